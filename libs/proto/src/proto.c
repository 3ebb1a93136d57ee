/* Stage names: the one table the lineage writer, the parser and every reader share. */
#include "hl/proto.h"

#include <string.h>

static const char *const stage_names[HL_STAGE_COUNT] = {
    HL_STAGE_INGRESS_NAME, HL_STAGE_PERSISTED_NAME, HL_STAGE_DEAD_LETTERED_NAME};

const char *hl_stage_name(hl_stage_t s)
{
    return (unsigned)s < HL_STAGE_COUNT ? stage_names[s] : "unknown";
}

int hl_stage_parse(const char *s, hl_stage_t *out)
{
    for (int i = 0; s != NULL && i < HL_STAGE_COUNT; i++)
        if (strcmp(s, stage_names[i]) == 0) {
            *out = (hl_stage_t)i;
            return 0;
        }
    return HL_EINVAL;
}
