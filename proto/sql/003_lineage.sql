-- Lineage as stored by the auditor: append-only, one hash chain per lineage partition.
--
-- hash = sha256(prev_hash || convert_to(concat_ws(E'\n', 'hl-lineage-v1', chain, seq,
--                 lineage_offset, request_id, stage, ts_us, record), 'UTF8'))
-- with prev_hash = 32 zero bytes for seq 1. The auditor computes it in C (services/auditor/
-- chain.c) and services/auditor/README.md documents it; the view lineage_hash_check below
-- recomputes it in SQL with the same definition, and a test holds the two together.
-- `record` keeps the lineage JSON text exactly as received (jsonb would reformat it and break
-- the hash); cast it with record::jsonb to query inside it.
CREATE TABLE lineage (
    id              bigserial   PRIMARY KEY,
    chain           integer     NOT NULL,
    seq             bigint      NOT NULL,
    lineage_offset  bigint      NOT NULL,
    request_id      text        NOT NULL,
    stage           text        NOT NULL,
    ts_us           bigint      NOT NULL,
    ts              timestamptz NOT NULL,
    source          text,
    message_id      text,
    event_type      text,
    status          integer,
    error_code      text,
    kafka_partition integer,
    kafka_offset    bigint,
    latency_us      bigint,
    record          text        NOT NULL,
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT lineage_chain_seq UNIQUE (chain, seq),
    -- A redelivered lineage record (the auditor reads Kafka at least once) is never stored twice.
    CONSTRAINT lineage_chain_offset UNIQUE (chain, lineage_offset),
    CONSTRAINT lineage_stage CHECK (stage IN ('ingress', 'persisted', 'dead_lettered'))
);

CREATE INDEX lineage_request_stage ON lineage (request_id, stage);
CREATE INDEX lineage_message ON lineage (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX lineage_stage_ts ON lineage (stage, ts, id);

-- The database itself refuses to change history.
CREATE FUNCTION lineage_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lineage is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER lineage_no_update_delete BEFORE UPDATE OR DELETE ON lineage
    FOR EACH ROW EXECUTE FUNCTION lineage_refuse_change();
CREATE TRIGGER lineage_no_truncate BEFORE TRUNCATE ON lineage
    FOR EACH STATEMENT EXECUTE FUNCTION lineage_refuse_change();

-- Signed checkpoints of each chain head. The signing key never reaches the database; the
-- public key id says which key signed.
CREATE TABLE lineage_checkpoints (
    id          bigserial   PRIMARY KEY,
    chain       integer     NOT NULL,
    seq         bigint      NOT NULL,
    hash        bytea       NOT NULL,
    ts_us       bigint      NOT NULL,
    key_id      text        NOT NULL,
    signature   bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX lineage_checkpoints_chain ON lineage_checkpoints (chain, seq DESC);

CREATE TRIGGER lineage_checkpoints_no_update_delete BEFORE UPDATE OR DELETE
    ON lineage_checkpoints FOR EACH ROW EXECUTE FUNCTION lineage_refuse_change();

-- Per-minute latency histograms: bucket indexes of libs/hist, counts added in the same
-- transaction as the lineage rows they come from (so a restart never counts twice).
-- stage: ack | queue | persist | e2e.
CREATE TABLE latency_rollups (
    minute  timestamptz NOT NULL,
    stage   text        NOT NULL,
    source  text        NOT NULL,
    bucket  integer     NOT NULL,
    count   bigint      NOT NULL,
    PRIMARY KEY (minute, stage, source, bucket)
);
CREATE INDEX latency_rollups_stage_minute ON latency_rollups (stage, minute);

-- The hash recomputed in SQL, row by row, with the definition above.
CREATE VIEW lineage_hash_check AS
SELECT id, chain, seq,
       sha256(prev_hash || convert_to(concat_ws(E'\n', 'hl-lineage-v1', chain::text, seq::text,
              lineage_offset::text, request_id, stage, ts_us::text, record), 'UTF8')) AS computed,
       hash
FROM lineage;
