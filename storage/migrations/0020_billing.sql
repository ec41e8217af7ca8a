-- Billing (issue 6): tariff changes that split a billing period, and read conflicts kept for review.

-- A tariff change takes effect at local midnight of effective_date; billing splits a period there (VEE rule 13).
CREATE TABLE IF NOT EXISTS tariff_changes (
    effective_date  date PRIMARY KEY,
    tariff_code     text NOT NULL DEFAULT 'default',
    note            text NOT NULL DEFAULT ''
);

-- Reads that could not be stored because readings already holds another value for the same meter and time
-- (imports, manual reads). Never silently lost: reported by the import and counted by the VEE (rule 5).
CREATE TABLE IF NOT EXISTS reading_conflicts (
    id            bigserial PRIMARY KEY,
    meter_id      text NOT NULL,
    time          timestamptz NOT NULL,
    total_m3      double precision,
    stored_m3     double precision,
    source        text NOT NULL,
    file          text,
    line          bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reading_conflicts_meter_idx ON reading_conflicts (meter_id, time);
