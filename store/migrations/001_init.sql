-- Base schema: internal tables (prefixed by purpose) and the public views documented in the README.
-- All timestamps are UTC, stored as naive TIMESTAMP.

CREATE TABLE IF NOT EXISTS key_registry (
    key_name      VARCHAR PRIMARY KEY,
    environment   VARCHAR NOT NULL,
    owner         VARCHAR,
    owner_status  VARCHAR,
    fingerprint   VARCHAR NOT NULL,
    masked_key    VARCHAR NOT NULL,
    created_at    TIMESTAMP,
    rotated_at    TIMESTAMP,
    configured    BOOLEAN NOT NULL DEFAULT TRUE,
    first_seen_at TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS usage_daily (
    key_name   VARCHAR NOT NULL,
    day        DATE NOT NULL,
    calls      BIGINT NOT NULL,
    jobs       BIGINT NOT NULL,
    credits    DOUBLE NOT NULL,
    failed     BIGINT NOT NULL,
    fetched_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_name, day)
);

CREATE TABLE IF NOT EXISTS usage_event_log (
    event_id      VARCHAR PRIMARY KEY,
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

CREATE TABLE IF NOT EXISTS job_state (
    job_id           VARCHAR PRIMARY KEY,
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

CREATE TABLE IF NOT EXISTS job_status_log (
    job_id      VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,
    observed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (job_id, status)
);

CREATE TABLE IF NOT EXISTS model_pricing (
    model              VARCHAR PRIMARY KEY,
    credits_per_minute DOUBLE NOT NULL,
    fetched_at         TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS admin_inventory (
    key_fingerprint VARCHAR PRIMARY KEY,
    client_id       VARCHAR,
    name            VARCHAR,
    note            VARCHAR,
    enabled         BOOLEAN,
    created_at      TIMESTAMP,
    last_used_at    TIMESTAMP,
    fetched_at      TIMESTAMP NOT NULL
);

-- One row per key and endpoint: the incremental cursor, advanced with the rows it covers.
CREATE TABLE IF NOT EXISTS sync_state (
    key_name   VARCHAR NOT NULL,
    endpoint   VARCHAR NOT NULL,
    cursor     VARCHAR,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_name, endpoint)
);

CREATE SEQUENCE IF NOT EXISTS run_seq START 1;

CREATE TABLE IF NOT EXISTS run_log (
    run_id      BIGINT PRIMARY KEY,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status      VARCHAR NOT NULL,
    mode        VARCHAR,
    endpoints   VARCHAR,
    keys_total  INTEGER,
    keys_ok     INTEGER,
    requests    INTEGER,
    retries     INTEGER,
    rows_written BIGINT,
    pid         INTEGER,
    message     VARCHAR
);

-- Per key and endpoint outcome of a run: failures are kept here so one bad key never hides.
CREATE TABLE IF NOT EXISTS run_item_log (
    run_id     BIGINT NOT NULL,
    key_name   VARCHAR NOT NULL,
    endpoint   VARCHAR NOT NULL,
    status     VARCHAR NOT NULL,
    attempts   INTEGER,
    error_code VARCHAR,
    message    VARCHAR,
    request_id VARCHAR,
    finished_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, key_name, endpoint)
);

CREATE SEQUENCE IF NOT EXISTS landing_seq START 1;

CREATE TABLE IF NOT EXISTS raw_landing (
    landing_id      BIGINT PRIMARY KEY,
    endpoint        VARCHAR NOT NULL,
    key_name        VARCHAR,
    key_fingerprint VARCHAR,
    fetched_at      TIMESTAMP NOT NULL,
    request_id      VARCHAR,
    http_status     INTEGER,
    body_sha256     VARCHAR,
    body            VARCHAR
);

CREATE SEQUENCE IF NOT EXISTS quarantine_seq START 1;

CREATE TABLE IF NOT EXISTS quarantine_log (
    quarantine_id BIGINT PRIMARY KEY,
    endpoint      VARCHAR NOT NULL,
    key_name      VARCHAR,
    fetched_at    TIMESTAMP NOT NULL,
    request_id    VARCHAR,
    reason        VARCHAR NOT NULL,
    record        VARCHAR
);

CREATE TABLE IF NOT EXISTS coverage_gap_log (
    key_name    VARCHAR NOT NULL,
    endpoint    VARCHAR NOT NULL,
    gap_start   TIMESTAMP NOT NULL,
    gap_end     TIMESTAMP NOT NULL,
    detected_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_name, endpoint, gap_start)
);
