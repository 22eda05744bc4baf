-- Sharded collection and the partitioned export (numbered after 004, the smoke checks' migration).

-- Which shard of a fleet this file holds (shard 0 of 1: every key). Written by the first collection into the
-- file; a collector of another shard (or an unsharded one) then refuses it, so no key lands in two files.
CREATE TABLE IF NOT EXISTS collector_shard (
    only_row   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    shard      INTEGER NOT NULL,
    shards     INTEGER NOT NULL,
    claimed_at TIMESTAMP NOT NULL
);

-- Public: each key's collection cursors (where event polling began, whether the job history was capped):
-- what the analytics read besides the rows, so an export carries it too.
CREATE OR REPLACE VIEW collection_cursors AS
SELECT key_name, endpoint, cursor, updated_at FROM sync_state;

-- Public: when each day of the usage summary was last read (a day read before it ended is incomplete).
CREATE OR REPLACE VIEW summary_fetched AS
SELECT u.key_name, u.day, u.fetched_at
FROM usage_daily u JOIN key_registry k USING (key_name)
WHERE k.configured;
