/* Messages and names for the HL_E* codes, generated from the same table as the enum. */
#include "hl/error.h"

#include <stddef.h>

#define HL_ERR_MSG(name, msg) [HL_##name - HL_ERR_FIRST_ - 1] = msg,
#define HL_ERR_NAME(name, msg) [HL_##name - HL_ERR_FIRST_ - 1] = #name,

static const char *const err_messages[] = {HL_ERRNO_MAP(HL_ERR_MSG)};
static const char *const err_names[] = {HL_ERRNO_MAP(HL_ERR_NAME)};

/* Maps a code to its table slot, or -1 when it is not one of ours. */
static int err_slot(int err)
{
    if (err <= HL_ERR_FIRST_ || err >= HL_ERR_LAST_) return -1;
    return err - HL_ERR_FIRST_ - 1;
}

const char *hl_strerror(int err)
{
    if (err == HL_OK) return "success";
    int slot = err_slot(err);
    return slot < 0 ? "unknown error" : err_messages[slot];
}

const char *hl_errname(int err)
{
    if (err == HL_OK) return "OK";
    int slot = err_slot(err);
    return slot < 0 ? "EUNKNOWN" : err_names[slot];
}
