/* Evidence files and their manifest. The manifest lists every file of the folder, so an edit,
 * a removal and an addition are all detected; the format is the one sha256sum -c reads. */
#include "evidence.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl/util.h"

int cli_evidence_mkdir(const char *dir)
{
    char tmp[4096];
    if (hl_strlcpy(tmp, dir, sizeof(tmp))) return HL_EIO;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return HL_EIO;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return HL_EIO;
    struct stat st;
    return stat(tmp, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : HL_EIO;
}

static int good_name(const char *name)
{
    return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0 && !strpbrk(name, "\n\r\\");
}

FILE *cli_evidence_open(const char *dir, const char *name)
{
    char path[4096];
    if (!good_name(name)) return NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) return NULL;
    return fopen(path, "w");
}

int cli_evidence_write(const char *dir, const char *name, const char *data, size_t len)
{
    if (!good_name(name)) return HL_EINVAL;
    FILE *f = cli_evidence_open(dir, name);
    if (!f) return HL_EIO;
    int ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    return ok ? 0 : HL_EIO;
}

int cli_sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return HL_EIO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    unsigned char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0) ok = EVP_DigestUpdate(ctx, buf, n) == 1;
    ok = ok && !ferror(f);
    unsigned char md[32];
    unsigned int ml = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &ml) == 1 && ml == 32;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (!ok) return HL_EIO;
    hl_hex(hex, md, 32);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the entries of dir other than "." "..", and the manifest; sorted. *odd is
 * set when a subfolder or other non-regular entry is present. */
static int list_dir(const char *dir, char ***names, size_t *n, int *odd)
{
    DIR *d = opendir(dir);
    if (!d) return HL_EIO;
    *names = hl_xcalloc(CLI_EVIDENCE_MAX_FILES + 1, sizeof(char *));
    *n = 0;
    *odd = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (strcmp(e->d_name, CLI_EVIDENCE_MANIFEST) == 0) continue;
        if (strcmp(e->d_name, CLI_EVIDENCE_SIGNATURE) == 0) continue; /* signs the manifest */
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) *odd = 1;
        if (*n >= CLI_EVIDENCE_MAX_FILES) {
            rc = HL_ETOOBIG;
            break;
        }
        (*names)[(*n)++] = hl_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(*names, *n, sizeof(char *), cmp_str);
    return rc;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

int cli_evidence_seal(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    int odd = 0;
    int rc = list_dir(dir, &names, &n, &odd);
    if (!rc && odd) rc = HL_EINVAL;
    FILE *f = rc ? NULL : cli_evidence_open(dir, CLI_EVIDENCE_MANIFEST);
    if (!rc && !f) rc = HL_EIO;
    for (size_t i = 0; !rc && i < n; i++) {
        char path[4096], hex[65];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        rc = cli_sha256_file(path, hex);
        if (!rc && fprintf(f, "%s  %s\n", hex, names[i]) < 0) rc = HL_EIO;
    }
    if (f && fclose(f) != 0 && !rc) rc = HL_EIO;
    free_names(names, n);
    return rc;
}

/* One manifest entry. */
typedef struct {
    char name[256];
    char hex[65];
    int seen;
} entry_t;

static int parse_manifest(const char *text, size_t len, entry_t **out, size_t *nout, FILE *report,
                          int *problems)
{
    entry_t *ents = hl_xcalloc(CLI_EVIDENCE_MAX_FILES + 1, sizeof(entry_t));
    size_t n = 0, lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        /* "<64 hex>  <name>" (sha256sum's text mode; '*' binary marker accepted). */
        int ok = ll > 66 && p[64] == ' ' && (p[65] == ' ' || p[65] == '*') && ll - 66 < 256;
        for (size_t i = 0; ok && i < 64; i++)
            ok = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f');
        if (ok && n < CLI_EVIDENCE_MAX_FILES) {
            memcpy(ents[n].hex, p, 64);
            ents[n].hex[64] = '\0';
            memcpy(ents[n].name, p + 66, ll - 66);
            ents[n].name[ll - 66] = '\0';
            ok = good_name(ents[n].name);
            for (size_t k = 0; ok && k < n; k++)
                if (strcmp(ents[k].name, ents[n].name) == 0) ok = 0;
            if (ok) n++;
        }
        if (!ok && ll > 0) {
            fprintf(report, "malformed manifest line %zu\n", lineno);
            (*problems)++;
        }
        p += ll + 1;
    }
    *out = ents;
    *nout = n;
    return 0;
}

int cli_evidence_verify(const char *dir, FILE *report)
{
    return cli_evidence_verify_progress(dir, report, NULL);
}

int cli_evidence_verify_progress(const char *dir, FILE *report, FILE *progress)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, CLI_EVIDENCE_MANIFEST);
    char *text = NULL;
    size_t len = 0;
    if (hl_read_file(path, CLI_EVIDENCE_MAX_MANIFEST, &text, &len) != 0) {
        fprintf(report, "missing: %s\n", CLI_EVIDENCE_MANIFEST);
        return HL_EIO;
    }
    int problems = 0;
    entry_t *ents = NULL;
    size_t n = 0;
    (void)parse_manifest(text, len, &ents, &n, report, &problems);
    free(text);
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        if (progress) {
            fprintf(progress, "\r  checking %zu of %zu files   ", i + 1, n);
            fflush(progress);
        }
        snprintf(path, sizeof(path), "%s/%s", dir, ents[i].name);
        struct stat st;
        if (lstat(path, &st) != 0) {
            fprintf(report, "missing: %s\n", ents[i].name);
            problems++;
        } else if (!S_ISREG(st.st_mode) || cli_sha256_file(path, hex) != 0 ||
                   strcmp(hex, ents[i].hex) != 0) {
            fprintf(report, "modified: %s\n", ents[i].name);
            problems++;
        }
    }
    if (progress) fprintf(progress, "\r%*s\r", 40, "");
    char **names = NULL;
    size_t nn = 0;
    int odd = 0;
    if (list_dir(dir, &names, &nn, &odd) != 0) {
        fprintf(report, "unlisted: over %d files\n", CLI_EVIDENCE_MAX_FILES);
        problems++;
    }
    for (size_t i = 0; i < nn; i++) {
        int listed = 0;
        for (size_t k = 0; k < n && !listed; k++) listed = strcmp(ents[k].name, names[i]) == 0;
        if (!listed) {
            fprintf(report, "unlisted: %s\n", names[i]);
            problems++;
        }
    }
    free_names(names, nn);
    free(ents);
    return problems;
}
