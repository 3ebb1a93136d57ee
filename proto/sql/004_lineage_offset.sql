-- Where the persister's lineage is known delivered, beside where its rows are committed.
--
-- The persister commits rows and next_offset in one transaction, then produces one `persisted`
-- or `dead_lettered` lineage record per Kafka record. lineage_offset is the offset below which
-- every one of those records was acknowledged by Kafka; it only moves forward and never passes
-- next_offset. On assignment the persister reads the records in [lineage_offset, next_offset)
-- again and produces their lineage from what webhook_events holds, so a crash between the
-- commit and the delivery leaves no gap. NULL: not tracked (rows written before this column
-- existed, and other users of the table such as the auditor).
ALTER TABLE consumer_offsets ADD COLUMN lineage_offset bigint;
