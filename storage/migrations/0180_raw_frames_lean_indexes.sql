-- raw_frames is written once per frame and read by its digest alone (the writer's dedup): the two btree
-- indexes on (meter_id, received_at) and (received_at) cost about 96 bytes per frame and served no query.
-- A BRIN index keeps time-range scans (archiving, audits) cheap for a few bytes per thousand frames.
DROP INDEX IF EXISTS raw_frames_meter_idx;
DROP INDEX IF EXISTS raw_frames_received_idx;
CREATE INDEX IF NOT EXISTS raw_frames_received_brin ON raw_frames USING brin (received_at);
