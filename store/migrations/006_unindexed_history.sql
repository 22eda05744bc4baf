-- The four history tables lose their primary-key indexes (numbered after 005, the shards' migration).
-- DuckDB keeps a table's ART index in memory whole and writes it back at every checkpoint, so on a large fleet
-- (10,000 keys: 3.6 M rows after a first collection) the indexes were most of the collector writer's memory
-- and of its time. Uniqueness is kept by the writes themselves: the one writer merges each batch on the key
-- columns (store.writes: MERGE INTO ... ON key_name AND id; an id is the vendor's, and every /v1 answer is
-- scoped to the calling key), so a batch of a few keys reads only the row groups that can hold those keys.

CREATE TABLE usage_daily_006 (
    key_name   VARCHAR NOT NULL,
    day        DATE NOT NULL,
    calls      BIGINT NOT NULL,
    jobs       BIGINT NOT NULL,
    credits    DOUBLE NOT NULL,
    failed     BIGINT NOT NULL,
    fetched_at TIMESTAMP NOT NULL
);
INSERT INTO usage_daily_006 SELECT * FROM usage_daily;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_006 RENAME TO usage_daily;

CREATE TABLE usage_event_log_006 (
    event_id      VARCHAR NOT NULL,
    key_name      VARCHAR NOT NULL,
    occurred_at   TIMESTAMP NOT NULL,
    endpoint      VARCHAR,
    method        VARCHAR,
    status_code   INTEGER,
    request_id    VARCHAR,
    job_id        VARCHAR,
    model         VARCHAR,
    credits       DOUBLE,
    first_seen_at TIMESTAMP NOT NULL
);
INSERT INTO usage_event_log_006 SELECT * FROM usage_event_log;
DROP TABLE usage_event_log;
ALTER TABLE usage_event_log_006 RENAME TO usage_event_log;

CREATE TABLE job_state_006 (
    job_id           VARCHAR NOT NULL,
    key_name         VARCHAR NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    status           VARCHAR NOT NULL,
    progress         DOUBLE,
    model            VARCHAR,
    output_format    VARCHAR,
    duration_seconds DOUBLE,
    credits_charged  DOUBLE,
    billing_status   VARCHAR,
    output_url       VARCHAR,
    error            VARCHAR,
    first_seen_at    TIMESTAMP NOT NULL,
    last_seen_at     TIMESTAMP NOT NULL
);
INSERT INTO job_state_006 SELECT * FROM job_state;
DROP TABLE job_state;
ALTER TABLE job_state_006 RENAME TO job_state;

CREATE TABLE job_status_log_006 (
    job_id      VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,
    observed_at TIMESTAMP NOT NULL
);
INSERT INTO job_status_log_006 SELECT * FROM job_status_log;
DROP TABLE job_status_log;
ALTER TABLE job_status_log_006 RENAME TO job_status_log;
