-- The content of each event bound to the hash-chained history, and kept so it can be verified
-- against its provider's signature again later.
--
-- body_sha256: SHA-256 of the body exactly as the ingress received it (32 bytes). The same
--   digest is in the event's `ingress` and `persisted` lineage records (field body_sha256),
--   which are hash-chained and checkpointed outside the database: a raw body, a payload or this
--   column edited by whoever owns the database no longer matches them (services/auditor/
--   README.md, "Content check").
-- raw_body: the body byte for byte. payload (jsonb) stays for queries; it must equal the
--   parse of raw_body.
-- signature_headers: the provider's signature, timestamp and id headers that authenticated
--   the body (lowercase name -> value), so `hookline reverify` and the auditor can check the
--   signature again. Never a bearer token or Authorization header; NULL for bearer sources.
--
-- All three are NULL for rows written before this migration (their lineage carries no digest
-- either, so the content check can only find such a row missing, not edited).
ALTER TABLE webhook_events
    ADD COLUMN body_sha256 bytea,
    ADD COLUMN raw_body bytea,
    ADD COLUMN signature_headers jsonb,
    ADD CONSTRAINT webhook_events_body_sha256_length CHECK (length(body_sha256) = 32);
