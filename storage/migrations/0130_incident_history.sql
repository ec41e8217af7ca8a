-- Leak incidents and the other alerts are kept as history, open or closed (storage/alerts.py): the detector
-- matches a detection to the stored incident of its meter and kind that it overlaps, and the list and the pages
-- read incidents by state and time.
CREATE INDEX IF NOT EXISTS alerts_meter_kind_seen_idx ON alerts (meter_id, kind, first_seen, last_seen);
CREATE INDEX IF NOT EXISTS alerts_state_seen_idx ON alerts (state, first_seen DESC);
