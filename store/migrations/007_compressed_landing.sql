-- Raw bodies are landed zstd-compressed (store.landing.pack_body). A 10,000-key first collection lands ~30,000
-- bodies, 573 MB of JSON; as text, DuckDB recompressed the table's growing last row group at every checkpoint
-- of the run (~35): ~21 s of the writer's CPU. Compressed by the collector (2 s there), they are 91 MB and
-- cost the writer ~5 s. Rows landed before this migration keep their text in `body`; store.reads'
-- `landed_bodies` reads either.
ALTER TABLE raw_landing ADD COLUMN body_zstd BLOB;
