/* The batch writer's SQL: the statements prepared on every connection and the pieces of the
 * COPY way's simple query. Kept apart from the code that binds them so the semantics (the
 * unique key, offsets that only move forward) read in one place. */
#include "batch_sql.h"

#include <stddef.h>

#include "hl/pg.h"

#define INSERT_COLS                                                                                \
    "INSERT INTO webhook_events (source, message_id, event_type, request_id, received_at,"         \
    " kafka_partition, kafka_offset, payload, body_sha256, raw_body, signature_headers)"
/* The arrays are unnested in the select list (a ProjectSet walks them in step) rather than in
 * FROM: a function scan would first copy every value into a tuplestore per array. */
#define UNNEST_ROWS                                                                                \
    " SELECT * FROM (SELECT unnest($1::text[]) AS s, unnest($2::text[]) AS m,"                     \
    " unnest($3::text[]) AS e, unnest($4::uuid[]) AS r, unnest($5::timestamptz[]) AS ra,"          \
    " unnest($6::int4[]) AS p, unnest($7::int8[]) AS o, unnest($8::jsonb[]) AS j,"                 \
    " unnest($9::bytea[]) AS d, unnest($10::bytea[]) AS b, unnest($11::jsonb[]) AS h) AS t"
#define RETURN_ROWS " RETURNING id, kafka_partition, kafka_offset"

/* Insert-or-skip with ON CONFLICT: safe against any concurrent writer of the same keys. */
#define INSERT_ROWS                                                                                \
    INSERT_COLS UNNEST_ROWS " ON CONFLICT ON CONSTRAINT webhook_events_key DO NOTHING" RETURN_ROWS

/* The same with an anti-join instead of ON CONFLICT: a plain insert skips speculative insertion
 * and its extra WAL record per row, about a quarter of the statement's server CPU measured here
 * (services/persister/README.md). Only a concurrent writer of the same new key can make it fail
 * (23505); the batch is then run again with INSERT_ROWS. Duplicates inside one batch are
 * removed before sending (pst_rows_mark_batch_duplicates), since the anti-join cannot see them. */
#define INSERT_ROWS_ANTI                                                                           \
    INSERT_COLS UNNEST_ROWS                                                                        \
        " WHERE NOT EXISTS (SELECT 1 FROM webhook_events w"                                        \
        " WHERE w.source = t.s AND w.message_id = t.m AND w.event_type = t.e)" RETURN_ROWS

/* Both offsets move forward only. lineage_offset (proto/sql/004) is where the lineage known
 * delivered ends; it never passes next_offset. */
#define UPSERT_OFFSETS(g, t, p, o, l)                                                              \
    HL_PG_OFFSETS_INSERT(HL_PG_OFFSETS_LINEAGE_COL)                                                \
    " SELECT " g ", " t ", u.p, u.o, LEAST(u.l, u.o)"                                              \
    " FROM unnest(" p "::int4[], " o "::int8[], " l                                                \
    "::int8[]) AS u(p, o, l)" HL_PG_OFFSETS_CONFLICT(HL_PG_OFFSETS_LINEAGE_SET)

static const char PST_SQL_BATCH_FAST[] =
    "WITH ins AS (" INSERT_ROWS_ANTI "), off AS (" UPSERT_OFFSETS(
        "$12::text", "$13::text", "$14", "$15", "$16") ") SELECT * FROM ins";
static const char PST_SQL_BATCH[] = "WITH ins AS (" INSERT_ROWS "), off AS (" UPSERT_OFFSETS(
    "$12::text", "$13::text", "$14", "$15", "$16") ") SELECT * FROM ins";
static const char PST_SQL_ROWS[] = INSERT_ROWS;
/* Moves lineage_offset alone (after the last batch, at a revocation or shutdown). It leaves
 * updated_at alone: that stays the time of the partition's last batch commit. */
static const char PST_SQL_LINEAGE[] =
    "UPDATE consumer_offsets AS c SET lineage_offset = LEAST(u.l, c.next_offset)"
    " FROM unnest($3::int4[], $4::int8[]) AS u(p, l)"
    " WHERE c.consumer_group = $1 AND c.topic = $2 AND c.kafka_partition = u.p"
    " AND (c.lineage_offset IS NULL OR c.lineage_offset < LEAST(u.l, c.next_offset))";
/* What Postgres holds for records committed before a restart: the stored row of each key, with
 * its position and insert time (binary timestamptz). */
static const char PST_SQL_RECOVER[] =
    "SELECT k.i, w.id, w.kafka_partition, w.kafka_offset, w.persisted_at"
    " FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(s, m, e, i)"
    " JOIN webhook_events w ON w.source = k.s AND w.message_id = k.m AND w.event_type = k.e";
/* The stored row of each given key, to tell "duplicate" from "inserted by an earlier attempt
 * whose commit we never heard about" after a retry. */
static const char PST_SQL_LOOKUP[] =
    "SELECT w.id, w.kafka_partition, w.kafka_offset"
    " FROM unnest($1::text[], $2::text[], $3::text[]) AS k(s, m, e)"
    " JOIN webhook_events w ON w.source = k.s AND w.message_id = k.m AND w.event_type = k.e";
/* The COPY path's probe: the keys of a batch (with their positions $4) that no row holds yet,
 * each with a fresh id from the table's sequence, which the COPY gives the row. The anti-join
 * form matters: written as a per-row EXISTS in the select list, the generic plan hashed the
 * whole table once per batch instead of probing the unique index. */
static const char PST_SQL_PROBE[] =
    "SELECT k.i, nextval('webhook_events_id_seq'::regclass)"
    " FROM (SELECT unnest($4::int4[]) AS i, unnest($1::text[]) AS s, unnest($2::text[]) AS m,"
    " unnest($3::text[]) AS e) AS k"
    " WHERE NOT EXISTS (SELECT 1 FROM webhook_events w"
    " WHERE w.source = k.s AND w.message_id = k.m AND w.event_type = k.e)";
/* The rest of the COPY path, sent as one simple query: the offsets upsert and COMMIT run as
 * soon as the rows are in, in the same transaction, with no further round trip. */
const char PST_SQL_COPY[] =
    "BEGIN; COPY webhook_events (id, source, message_id, event_type, request_id, received_at,"
    " kafka_partition, kafka_offset, payload, body_sha256, raw_body, signature_headers)"
    " FROM STDIN (FORMAT binary);";
const char PST_SQL_COPY_OFFSETS[] = " " HL_PG_OFFSETS_INSERT(HL_PG_OFFSETS_LINEAGE_COL) " VALUES ";
const char PST_SQL_COPY_END[] = HL_PG_OFFSETS_CONFLICT(HL_PG_OFFSETS_LINEAGE_SET) "; COMMIT";

static const char PST_SQL_LOAD[] =
    "SELECT kafka_partition, next_offset, lineage_offset,"
    " (extract(epoch FROM updated_at) * 1000000)::int8 FROM consumer_offsets"
    " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3::int4[])";

const pst_bw_statement_t pst_bw_statements[] = {
    {"hl_batch", PST_SQL_BATCH},
    {"hl_batch_fast", PST_SQL_BATCH_FAST},
    {"hl_rows", PST_SQL_ROWS},
    {"hl_load", PST_SQL_LOAD},
    {"hl_lookup", PST_SQL_LOOKUP},
    {"pst_lineage", PST_SQL_LINEAGE},
    {"hl_recover", PST_SQL_RECOVER},
    {"hl_probe", PST_SQL_PROBE},
    {NULL, NULL},
};
