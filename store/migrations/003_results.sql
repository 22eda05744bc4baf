-- Result tables: findings computed once per collection by the one writer, read by pages and CLIs.
-- Each refresh is logged; `result_current` says, per kind of result, which refresh wrote the rows the
-- `result_*` tables hold now. Those tables are replaced whole, with the pointer, in one transaction, so a
-- refresh killed half-way leaves the previous results readable. Their columns follow what analytics
-- returns (the detector's incidents grow columns), so the refresh creates them.

CREATE SEQUENCE IF NOT EXISTS result_refresh_seq START 1;

CREATE TABLE IF NOT EXISTS result_refresh_log (
    refresh_id   BIGINT PRIMARY KEY,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    as_of        TIMESTAMP NOT NULL,
    data_run_id  BIGINT,
    status       VARCHAR NOT NULL,
    seconds      DOUBLE,
    cpu_seconds  DOUBLE,
    pid          INTEGER,
    message      VARCHAR
);

CREATE TABLE IF NOT EXISTS result_current (
    kind         VARCHAR PRIMARY KEY,
    refresh_id   BIGINT NOT NULL,
    as_of        TIMESTAMP NOT NULL,
    data_run_id  BIGINT,
    data_as_of   TIMESTAMP,
    window_start TIMESTAMP,
    window_end   TIMESTAMP,
    detail       VARCHAR
);
