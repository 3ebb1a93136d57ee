/* The consumer_offsets upsert with binary array parameters: one round trip for every partition
 * of a batch. */
#include <stdlib.h>
#include <string.h>

#include "hl/pg.h"

static const char upsert_sql[] = HL_PG_OFFSETS_INSERT(
    "") " SELECT $1::text, $2::text, u.p, u.o"
        " FROM unnest($3::int4[], $4::int8[]) AS u(p, o)" HL_PG_OFFSETS_CONFLICT("");

static const char upsert_lineage_sql[] = HL_PG_OFFSETS_INSERT(
    HL_PG_OFFSETS_LINEAGE_COL) " SELECT $1::text, $2::text, u.p, u.o,"
                               " LEAST(u.l, u.o) FROM unnest($3::int4[], $4::int8[], $5::int8[]) "
                               "AS u(p, o, l)" HL_PG_OFFSETS_CONFLICT(HL_PG_OFFSETS_LINEAGE_SET);

static void int8_array(hl_buf_t *b, const int64_t *v, size_t n)
{
    hl_pg_array_begin(b, HL_PG_OID_INT8, n);
    for (size_t i = 0; i < n; i++) hl_pg_enc_int8(b, v[i]);
}

PGresult *hl_pg_offsets_upsert(PGconn *c, const char *group, const char *topic,
                               const int32_t *parts, const int64_t *next, const int64_t *lineage,
                               size_t n)
{
    hl_buf_t arr[3] = {{0}, {0}, {0}};
    hl_pg_array_begin(&arr[0], HL_PG_OID_INT4, n);
    for (size_t i = 0; i < n; i++) hl_pg_enc_int4(&arr[0], parts[i]);
    int8_array(&arr[1], next, n);
    if (lineage) int8_array(&arr[2], lineage, n);
    const char *vals[5] = {group, topic, arr[0].p, arr[1].p, arr[2].p};
    int lens[5] = {(int)strlen(group), (int)strlen(topic), (int)arr[0].len, (int)arr[1].len,
                   (int)arr[2].len};
    int fmts[5] = {1, 1, 1, 1, 1};
    PGresult *res = PQexecParams(c, lineage ? upsert_lineage_sql : upsert_sql, lineage ? 5 : 4,
                                 NULL, vals, lens, fmts, 0);
    for (int i = 0; i < 3; i++) free(arr[i].p);
    return res;
}
