/* One table of hookline error codes: it yields both the HL_E* enum and hl_strerror(). */
#ifndef HL_ERROR_H
#define HL_ERROR_H

#if defined(__GNUC__)
#define HL_MUST_CHECK __attribute__((warn_unused_result))
#define HL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define HL_MUST_CHECK
#define HL_PRINTF(fmt, args)
#endif

/* X(name, message). Codes are negative; 0 means success. */
#define HL_ERRNO_MAP(X)                                                                            \
    X(EINVAL, "invalid argument")                                                                  \
    X(ENOMEM, "out of memory")                                                                     \
    X(ERANGE, "value out of range")                                                                \
    X(EIO, "input/output error")                                                                   \
    X(EPARSE, "malformed input")                                                                   \
    X(ETOOBIG, "input over its size limit")                                                        \
    X(ENOTFOUND, "not found")                                                                      \
    X(ETIMEDOUT, "timed out")                                                                      \
    X(EAGAIN, "temporarily unavailable, try again")                                                \
    X(EAUTH, "authentication failed")                                                              \
    X(ECONFIG, "invalid configuration")                                                            \
    X(EKAFKA, "kafka error")                                                                       \
    X(EPG, "postgres error")                                                                       \
    X(EDUP, "duplicate")                                                                           \
    X(ESTATE, "operation not valid in this state")

typedef enum {
    HL_OK = 0,
#define HL_ERR_ENUM(name, msg) HL_##name,
    HL_ERR_FIRST_ = -1000,
    HL_ERRNO_MAP(HL_ERR_ENUM)
#undef HL_ERR_ENUM
        HL_ERR_LAST_
} hl_err_t;

/* Returns a static message for an HL_E* code (or "success" for 0, "unknown error" otherwise). */
const char *hl_strerror(int err);

/* Returns the short symbolic name ("EINVAL") of an HL_E* code, or "EUNKNOWN". */
const char *hl_errname(int err);

#endif
