/* Configuration loading: libcyaml against a service schema, HOOKLINE_* overrides, validation
 * messages and secret loading. libcyaml's diagnostics are captured per thread so they end up
 * in the caller's errbuf instead of on stderr. */
#include "hl/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl/util.h"

/* A configuration file is a few kilobytes; anything near this size is a mistake. */
#define CONFIG_MAX_FILE (1024 * 1024)
/* Secrets are tokens or keys, never megabytes. */
#define SECRET_MAX_FILE (64 * 1024)
/* An overriding string value larger than this is refused rather than copied. */
#define ENV_MAX_STR (64 * 1024)
/* Values echoed in error messages are shortened to this many bytes. */
#define ECHO_MAX 64

/* libcyaml writes several lines per error (message and backtrace); they are joined here. */
static _Thread_local char tl_log[HL_CONFIG_ERRBUF];
static _Thread_local size_t tl_log_len;

static void cyaml_log_capture(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    char line[256];
    int n = vsnprintf(line, sizeof line, fmt, args);
    if (n <= 0) return;
    /* libcyaml prefixes every line with "Load: " and announces its backtrace on a line of
     * its own; keep only the content, trimmed, and join the lines with "; ". */
    const char *p = line;
    if (strncmp(p, "Load: ", 6) == 0) p += 6;
    while (*p == ' ') p++;
    if (strncmp(p, "Backtrace:", 10) == 0) return;
    size_t len = strnlen(p, sizeof line);
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == ' ')) len--;
    if (len == 0) return;
    if (tl_log_len > 0 && tl_log_len + 2 < sizeof tl_log) {
        tl_log[tl_log_len++] = ';';
        tl_log[tl_log_len++] = ' ';
    }
    for (size_t i = 0; i < len && tl_log_len + 1 < sizeof tl_log; i++) {
        char ch = p[i];
        tl_log[tl_log_len++] = (ch == '\n' || ch == '\t') ? ' ' : ch;
    }
    tl_log[tl_log_len] = '\0';
}

static const cyaml_config_t hl_cyaml_cfg = {
    .log_fn = cyaml_log_capture,
    .log_ctx = NULL,
    .mem_fn = cyaml_mem, /* malloc/realloc/free, so overrides may free() what libcyaml made */
    .mem_ctx = NULL,
    .log_level = CYAML_LOG_ERROR,
    /* Unknown keys are errors (a typo must not silently fall back to a default), and YAML
     * aliases are refused: a configuration never needs them and they can expand a small file
     * into a huge document. */
    .flags = CYAML_CFG_NO_ALIAS,
};

const cyaml_config_t *hl_cyaml_config(void)
{
    return &hl_cyaml_cfg;
}

/* Copies at most ECHO_MAX bytes of v into out, replacing control bytes, so error messages stay
 * one readable line whatever the input. */
static void echo_value(char *out, size_t cap, const char *v)
{
    if (v == NULL) {
        snprintf(out, cap, "(unset)");
        return;
    }
    size_t o = 0;
    for (size_t i = 0; v[i] != '\0' && o + 4 < cap; i++) {
        if (i == ECHO_MAX) {
            out[o++] = '.';
            out[o++] = '.';
            out[o++] = '.';
            break;
        }
        unsigned char ch = (unsigned char)v[i];
        out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    out[o] = '\0';
}

/* Is path (symlinks followed) a file the read may be tried on: a regular file, a directory
 * or nothing at all (the read then fails and says why)? A named pipe would block the read
 * until a writer came, and the caller is the thread that answers SIGTERM; a device or a
 * socket is no configuration or secret either. */
static bool readable_kind(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
}

int hl_config_args(int argc, char **argv, const char **path)
{
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            *path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            *path = argv[i] + 9;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        else
            return -1;
    }
    return *path ? 0 : -1;
}

int hl_config_load(const char *path, const cyaml_schema_value_t *schema, void **out, char *errbuf,
                   size_t errcap)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    if (!readable_kind(path)) {
        snprintf(errbuf, errcap, "config %s: not a regular file (a named pipe, a device?)", path);
        return HL_EIO;
    }
    int rc = hl_read_file(path, CONFIG_MAX_FILE, &text, &len);
    if (rc == HL_ETOOBIG) {
        snprintf(errbuf, errcap, "config %s: file larger than %d bytes", path, CONFIG_MAX_FILE);
        return HL_ECONFIG;
    }
    if (rc != 0) {
        snprintf(errbuf, errcap, "config %s: cannot read: %s", path, strerror(errno));
        return HL_EIO;
    }
    tl_log_len = 0;
    tl_log[0] = '\0';
    cyaml_data_t *data = NULL;
    cyaml_err_t err =
        cyaml_load_data((const uint8_t *)text, len, &hl_cyaml_cfg, schema, &data, NULL);
    free(text);
    if (err != CYAML_OK) {
        snprintf(errbuf, errcap, "config %s: %s%s%s", path, cyaml_strerror(err),
                 tl_log_len ? ": " : "", tl_log);
        return HL_ECONFIG;
    }
    if (data == NULL) {
        snprintf(errbuf, errcap, "config %s: empty document", path);
        return HL_ECONFIG;
    }
    *out = data;
    return 0;
}

void hl_config_free(const cyaml_schema_value_t *schema, void *cfg)
{
    if (cfg == NULL) return;
    cyaml_free(&hl_cyaml_cfg, schema, cfg, 0);
}

int hl_config_fail(char *errbuf, size_t errcap, const char *field, const char *value,
                   const char *rule)
{
    char shown[ECHO_MAX + 8];
    echo_value(shown, sizeof shown, value);
    snprintf(errbuf, errcap, "config: field '%s' = %s: %s", field, shown, rule);
    return HL_ECONFIG;
}

static int env_fail(char *errbuf, size_t errcap, const char *var, const char *value,
                    const char *rule)
{
    char shown[ECHO_MAX + 8];
    echo_value(shown, sizeof shown, value);
    snprintf(errbuf, errcap, "config: env '%s' = '%s': %s", var, shown, rule);
    return HL_ECONFIG;
}

/* Strict decimal: digits only (an optional '-' when allow_neg), no blanks, no '+', no hex. */
static int parse_strict(const char *s, int64_t min, int64_t max, int64_t *v)
{
    const char *p = s;
    if (*p == '-' && min < 0) p++;
    if (*p == '\0') return HL_EPARSE;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return HL_EPARSE;
    return hl_parse_i64(s, min, max, v);
}

static int parse_bool(const char *s, bool *b)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0) return *b = true, 0;
        if (strcmp(s, no[i]) == 0) return *b = false, 0;
    }
    return HL_EPARSE;
}

static int env_apply(void *cfg, const hl_env_override_t *row, const char *val, char *errbuf,
                     size_t errcap)
{
    char *field = (char *)cfg + row->offset;
    int64_t v = 0;
    switch (row->type) {
    case HL_ENV_STR: {
        if (strnlen(val, ENV_MAX_STR + 1) > ENV_MAX_STR)
            /* String overrides may carry credentials: the value is never echoed. */
            return env_fail(errbuf, errcap, row->var, "(not shown)", "longer than 65536 bytes");
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = hl_xstrdup(val);
        return 0;
    }
    case HL_ENV_U32:
        if (parse_strict(val, 0, UINT32_MAX, &v) != 0)
            return env_fail(errbuf, errcap, row->var, val,
                            "must be a decimal integer in [0, 4294967295]");
        *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    case HL_ENV_I64:
        if (parse_strict(val, INT64_MIN, INT64_MAX, &v) != 0)
            return env_fail(errbuf, errcap, row->var, val, "must be a 64-bit decimal integer");
        *(int64_t *)(void *)field = v;
        return 0;
    case HL_ENV_BOOL: {
        bool b;
        if (parse_bool(val, &b) != 0)
            return env_fail(errbuf, errcap, row->var, val,
                            "must be one of true, false, 1, 0, yes, no, on, off");
        *(bool *)(void *)field = b;
        return 0;
    }
    }
    return env_fail(errbuf, errcap, row->var, val, "unknown override type");
}

int hl_config_env(void *cfg, const hl_env_override_t *rows, size_t nrows, char *errbuf,
                  size_t errcap)
{
    for (size_t i = 0; i < nrows; i++) {
        const char *val = getenv(rows[i].var);
        if (val == NULL) continue;
        int rc = env_apply(cfg, &rows[i], val, errbuf, errcap);
        if (rc != 0) return rc;
    }
    return 0;
}

int hl_config_check_u32(const char *field, uint32_t v, uint32_t min, uint32_t max, char *errbuf,
                        size_t errcap)
{
    if (v >= min && v <= max) return 0;
    char shown[16], rule[64];
    snprintf(shown, sizeof shown, "%" PRIu32, v);
    snprintf(rule, sizeof rule, "must be in [%" PRIu32 ", %" PRIu32 "]", min, max);
    return hl_config_fail(errbuf, errcap, field, shown, rule);
}

int hl_config_check_str(const char *field, const char *v, size_t min_len, size_t max_len,
                        char *errbuf, size_t errcap)
{
    if (v == NULL) {
        if (min_len == 0) return 0;
        return hl_config_fail(errbuf, errcap, field, NULL, "must be set");
    }
    size_t n = strnlen(v, max_len + 1);
    if (n >= min_len && n <= max_len) return 0;
    char rule[80];
    snprintf(rule, sizeof rule, "length must be in [%zu, %zu] bytes", min_len, max_len);
    return hl_config_fail(errbuf, errcap, field, v, rule);
}

/* Copies the n bytes at src into a new NUL-terminated string of exactly n bytes. A secret is
 * text: a NUL inside it would make every later strlen() disagree with the length the caller
 * was given (and a wipe over that length would run past the copy), so it is refused. */
static int secret_take(const char *src, size_t n, char **out, size_t *len)
{
    /* A file written by an editor or `echo` ends with a newline that is not part of it. */
    while (n > 0 && (src[n - 1] == '\n' || src[n - 1] == '\r')) n--;
    if (memchr(src, '\0', n) != NULL) return HL_EPARSE;
    char *copy = hl_xmalloc(n + 1);
    memcpy(copy, src, n);
    copy[n] = '\0';
    *out = copy;
    if (len) *len = n;
    return 0;
}

int hl_secret_file_private(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return errno == ENOENT ? HL_ENOTFOUND : HL_EIO;
    return (st.st_mode & (S_IRWXG | S_IRWXO)) != 0 ? HL_EINVAL : 0;
}

int hl_secret_load(const char *env, const char *file, bool shared_ok, char **out, size_t *len)
{
    *out = NULL;
    if (len) *len = 0;
    if (env != NULL) {
        const char *v = getenv(env);
        if (v != NULL) return secret_take(v, strlen(v), out, len);
    }
    if (file == NULL || file[0] == '\0') return HL_ENOTFOUND;
    int priv = hl_secret_file_private(file);
    if (priv == HL_ENOTFOUND || (priv == HL_EINVAL && !shared_ok)) return priv;
    if (!readable_kind(file)) return HL_ESTATE;
    char *text = NULL;
    size_t n = 0;
    int rc = hl_read_file(file, SECRET_MAX_FILE, &text, &n);
    if (rc == HL_ETOOBIG) return HL_EIO;
    if (rc != 0) return errno == ENOENT ? HL_ENOTFOUND : HL_EIO;
    rc = secret_take(text, n, out, len);
    /* Wipe the copy that held the secret before handing the memory back. */
    explicit_bzero(text, n);
    free(text);
    return rc;
}
