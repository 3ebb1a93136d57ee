-- Latency rollups kept per outcome class, so a chart of accepted requests is not mixed with
-- rejected ones (a 400 answered after 5 s is no news about the accepted path):
--   accepted  the ingress answered 2xx (and every queue, persist and e2e sample: only
--             accepted requests reach the persister),
--   rejected  the ingress answered anything else,
--   unsplit   rows counted before this migration, when both classes shared one row.
-- Old rows stay readable: a query without an outcome sums every class as before.
ALTER TABLE latency_rollups
    ADD COLUMN outcome text NOT NULL DEFAULT 'unsplit',
    ADD CONSTRAINT latency_rollups_outcome CHECK (outcome IN ('accepted', 'rejected', 'unsplit'));

ALTER TABLE latency_rollups DROP CONSTRAINT latency_rollups_pkey;
ALTER TABLE latency_rollups ADD PRIMARY KEY (minute, stage, source, outcome, bucket);
