-- Every stored lineage row lies inside a chain's walked range: chain is a lineage partition
-- (0 .. 255, services/auditor/store.h HL_MAX_CHAINS), seq counts from 1, offsets are Kafka's.
-- The database refuses rows the verifier would never read; the verifier does not rely on it
-- (whoever owns the database can drop a constraint) and looks for such rows itself.
ALTER TABLE lineage
    ADD CONSTRAINT lineage_chain_range CHECK (chain >= 0 AND chain < 256),
    ADD CONSTRAINT lineage_seq_positive CHECK (seq >= 1),
    ADD CONSTRAINT lineage_offset_positive CHECK (lineage_offset >= 0),
    ADD CONSTRAINT lineage_hash_length CHECK (length(hash) = 32 AND length(prev_hash) = 32);

ALTER TABLE lineage_checkpoints
    ADD CONSTRAINT lineage_checkpoints_range CHECK (chain >= 0 AND chain < 256 AND seq >= 1);

CREATE TRIGGER lineage_checkpoints_no_truncate BEFORE TRUNCATE ON lineage_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION lineage_refuse_change();
