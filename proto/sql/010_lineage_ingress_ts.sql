-- Lineage is looked up by time only for ingress rows (/v1/requests, /v1/gaps, the error budget,
-- the gap scan's start; services/auditor/query.c and gapscan.c, each with stage = 'ingress'),
-- so the outcome rows, half of the table, need no entry in a time index: one index entry less
-- to write per outcome row, and a time index half the size. Building it reads the whole table
-- once and holds off the auditor's writes meanwhile (the auditor waits and goes on).
DROP INDEX lineage_stage_ts;
CREATE INDEX lineage_ingress_ts ON lineage (ts, id) WHERE stage = 'ingress';
