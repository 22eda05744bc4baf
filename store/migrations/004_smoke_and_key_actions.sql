-- Smoke checks per key, and the append-only audit of key actions taken through the admin API.

CREATE SEQUENCE IF NOT EXISTS smoke_check_seq START 1;

-- One row per check path (success or failure) of one key in one run; never updated.
CREATE TABLE IF NOT EXISTS smoke_check_log (
    check_id         BIGINT PRIMARY KEY,
    run_id           VARCHAR NOT NULL,      -- the checks started together (one CLI call, schedule tick or button)
    trigger          VARCHAR NOT NULL,      -- cli | schedule | dashboard
    key_name         VARCHAR NOT NULL,
    fingerprint      VARCHAR,
    path             VARCHAR NOT NULL CHECK (path IN ('success', 'failure')),
    started_at       TIMESTAMP NOT NULL,
    finished_at      TIMESTAMP NOT NULL,
    ok               BOOLEAN NOT NULL,
    job_id           VARCHAR,
    request_id       VARCHAR,
    status           VARCHAR,               -- the job's last status, or the outcome when no job was made
    error_code       VARCHAR,
    credits_charged  DOUBLE,
    credits_expected DOUBLE,
    output_ok        BOOLEAN,
    listed           BOOLEAN,               -- the job showed up in the jobs collection that followed
    seconds          DOUBLE,
    model            VARCHAR,
    video_url        VARCHAR,
    detail           VARCHAR                -- why it failed, in words
);

CREATE SEQUENCE IF NOT EXISTS key_action_seq START 1;

-- Every key action and refusal, appended once with its outcome; never updated or deleted.
CREATE TABLE IF NOT EXISTS key_action_log (
    action_id       BIGINT PRIMARY KEY,
    "at"            TIMESTAMP NOT NULL,     -- quoted: AT is an SQL keyword
    actor           VARCHAR NOT NULL,
    face            VARCHAR NOT NULL,       -- cli | dashboard
    action          VARCHAR NOT NULL CHECK (action IN ('disable', 'enable', 'rotate')),
    key_name        VARCHAR NOT NULL,
    fingerprint     VARCHAR,
    reason          VARCHAR,
    request_id      VARCHAR,
    outcome         VARCHAR NOT NULL CHECK (outcome IN ('done', 'dry_run', 'refused', 'failed')),
    forced          BOOLEAN NOT NULL DEFAULT FALSE,
    detail          VARCHAR,
    new_key_name    VARCHAR,                -- rotate: the replacement (its secret is never stored)
    new_fingerprint VARCHAR
);

CREATE OR REPLACE VIEW smoke_checks AS
SELECT check_id, run_id, trigger, key_name, path, started_at AS checked_at, ok, job_id, request_id, status,
       error_code, credits_charged, credits_expected, output_ok, listed, seconds, model, detail
FROM smoke_check_log;

CREATE OR REPLACE VIEW key_actions AS
SELECT "at", actor, action, key_name, fingerprint, reason, request_id, outcome,
       action_id, face, forced, detail, new_key_name, new_fingerprint
FROM key_action_log;

-- A rotation (a 'rotate' done) keeps its old key tracked until the old key is disabled: by a later 'disable' done
-- here, or as the collected admin inventory shows it.
CREATE OR REPLACE VIEW key_rotations AS
SELECT r."at" AS rotated_at, r.actor, r.key_name AS old_key_name, r.fingerprint AS old_fingerprint,
       r.new_key_name, r.new_fingerprint, r.request_id,
       coalesce((SELECT min(d."at") FROM key_action_log d
                  WHERE d.action = 'disable' AND d.outcome = 'done' AND d.fingerprint = r.fingerprint
                    AND d."at" >= r."at"),
                CASE WHEN a.enabled = FALSE AND a.fetched_at >= r."at" THEN a.fetched_at END) AS old_disabled_at,
       a.last_used_at AS old_last_used_upstream
FROM key_action_log r
LEFT JOIN admin_inventory a ON a.key_fingerprint = r.fingerprint
WHERE r.action = 'rotate' AND r.outcome = 'done';
