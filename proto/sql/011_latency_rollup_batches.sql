-- Latency counts arrive one row per batch and key, and are folded into latency_rollups later.
--
-- Each auditor batch used to upsert one latency_rollups row per (minute, stage, source,
-- outcome, bucket) it touched: about one row per lineage row, since a bucket is 1/128 of an
-- octave. An upsert of one such row cost Postgres more than storing a lineage row's share of
-- the batch. A batch now inserts one latency_rollup_batches row per (minute, stage, source,
-- outcome) with the buckets it touched and their counts (a few rows per batch), in the same
-- transaction as its lineage rows and offsets, so the counts stay exact. The auditor folds
-- these rows into latency_rollups every few seconds: one statement deletes the rows it sums
-- and adds the sums (services/auditor/README.md, "Latency"), so a count is in exactly one of
-- the two tables at any snapshot. Readers read latency_counts, which is both.
--
-- Like latency_rollups, these counts are a report, not evidence: the hash chain does not cover
-- them.
CREATE TABLE latency_rollup_batches (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    minute  timestamptz NOT NULL,
    stage   text        NOT NULL,
    source  text        NOT NULL,
    outcome text        NOT NULL,
    buckets integer[]   NOT NULL,
    counts  bigint[]    NOT NULL,
    CONSTRAINT latency_rollup_batches_outcome CHECK (outcome IN ('accepted', 'rejected')),
    CONSTRAINT latency_rollup_batches_shape
        CHECK (cardinality(buckets) = cardinality(counts) AND cardinality(buckets) > 0)
);
CREATE INDEX latency_rollup_batches_stage_minute ON latency_rollup_batches (stage, minute);

-- Every count, folded or not: what /v1/latency and the page sum.
CREATE VIEW latency_counts AS
    SELECT minute, stage, source, outcome, bucket, count FROM latency_rollups
    UNION ALL
    SELECT b.minute, b.stage, b.source, b.outcome, u.bucket, u.count
    FROM latency_rollup_batches b, unnest(b.buckets, b.counts) AS u(bucket, count);

-- The auditor kind also inserts the batches' rows and deletes them as it folds them, and holds
-- UPDATE on them because the fold locks the rows it takes (FOR UPDATE SKIP LOCKED needs it):
-- it could change a count in place, as it already could in latency_rollups. The grants
-- of 007 stay as they are, in hookline_grant_007, which this one calls first (it revokes what
-- the role held, then grants, the new table included where "every table" is granted).
ALTER FUNCTION hookline_grant(text, text) RENAME TO hookline_grant_007;

CREATE FUNCTION hookline_grant(kind text, grantee text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM hookline_grant_007(kind, grantee);
    IF kind = 'auditor' THEN
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %I.latency_rollup_batches TO %I',
                       current_schema(), grantee);
    END IF;
END
$$;

ALTER FUNCTION hookline_grant(text, text) SET search_path FROM CURRENT;
REVOKE ALL ON FUNCTION hookline_grant(text, text) FROM PUBLIC;
