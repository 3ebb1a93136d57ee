-- Events stored by the persister: exactly once per (source, message_id, event_type).
-- (kafka_partition, kafka_offset) is the order of record within a message.
CREATE TABLE webhook_events (
    id              bigserial PRIMARY KEY,
    source          text        NOT NULL,
    message_id      text        NOT NULL,
    event_type      text        NOT NULL,
    request_id      uuid        NOT NULL,
    received_at     timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    persisted_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    payload         jsonb       NOT NULL,
    CONSTRAINT webhook_events_key UNIQUE (source, message_id, event_type)
);

CREATE INDEX webhook_events_request_id ON webhook_events (request_id);
CREATE INDEX webhook_events_type_received ON webhook_events (event_type, received_at);

-- Consumer offsets kept in the same transaction as the rows they cover (forward only), so a
-- crash between the database commit and a Kafka offset commit never re-applies a batch.
CREATE TABLE consumer_offsets (
    consumer_group  text    NOT NULL,
    topic           text    NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint  NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
