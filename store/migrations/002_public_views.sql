-- The public SQL interface (stable contract, documented in the README): pages, CLIs and users read these.

CREATE OR REPLACE VIEW keys AS
SELECT key_name, environment, owner, owner_status, fingerprint, masked_key, created_at, rotated_at
FROM key_registry
WHERE configured;

CREATE OR REPLACE VIEW key_daily_usage AS
SELECT u.key_name, u.day, u.calls, u.jobs, u.credits, u.failed
FROM usage_daily u JOIN key_registry k USING (key_name)
WHERE k.configured;

CREATE OR REPLACE VIEW key_last_used AS
SELECT k.key_name,
       CASE
         WHEN e.last_event_at IS NULL THEN a.last_used_at
         WHEN a.last_used_at IS NULL THEN e.last_event_at
         ELSE greatest(e.last_event_at, a.last_used_at)
       END AS last_used_at
FROM key_registry k
LEFT JOIN (SELECT key_name, max(occurred_at) AS last_event_at FROM usage_event_log GROUP BY key_name) e
       USING (key_name)
LEFT JOIN admin_inventory a ON a.key_fingerprint = k.fingerprint
WHERE k.configured;

CREATE OR REPLACE VIEW usage_events AS
SELECT event_id, key_name, occurred_at, endpoint, method, status_code, request_id, job_id, model, credits
FROM usage_event_log;

CREATE OR REPLACE VIEW jobs AS
SELECT job_id, key_name, created_at, status, model, output_format, duration_seconds,
       credits_charged, billing_status, output_url, error, progress, first_seen_at, last_seen_at
FROM job_state;

CREATE OR REPLACE VIEW job_status_history AS
SELECT job_id, status, observed_at FROM job_status_log;

CREATE OR REPLACE VIEW pricing AS
SELECT model, credits_per_minute, fetched_at FROM model_pricing;

CREATE OR REPLACE VIEW collector_runs AS
SELECT run_id, started_at, finished_at, status, mode, endpoints, keys_total, keys_ok,
       requests, retries, rows_written, message
FROM run_log;

CREATE OR REPLACE VIEW collector_run_items AS
SELECT run_id, key_name, endpoint, status, attempts, error_code, message, request_id, finished_at
FROM run_item_log;

CREATE OR REPLACE VIEW coverage_gaps AS
SELECT key_name, endpoint, gap_start, gap_end, detected_at FROM coverage_gap_log;

CREATE OR REPLACE VIEW quarantine AS
SELECT quarantine_id, endpoint, key_name, fetched_at, request_id, reason, record FROM quarantine_log;

CREATE OR REPLACE VIEW admin_keys AS
SELECT key_fingerprint, client_id, name, note, enabled, created_at, last_used_at, fetched_at
FROM admin_inventory;
