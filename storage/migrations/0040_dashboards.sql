-- Dashboards (issue 8): small derived tables the chart queries read, refreshed by
-- storage.chart_queries.refresh_dashboards(conn, start, end) right after storage.flavor.refresh_rollups.

-- Per district and local day: consumption summed over meters (from consumption_daily) and the
-- 02:00-04:00 night flow summed over meters (from consumption_hourly).
CREATE TABLE IF NOT EXISTS district_daily (
    district        text NOT NULL,
    day             date NOT NULL,
    consumption_m3  double precision,
    n_meters        integer NOT NULL DEFAULT 0,     -- meters with a daily bucket that day
    night_flow_l_h  double precision,
    n_night         integer NOT NULL DEFAULT 0,     -- meters contributing to the night flow
    PRIMARY KEY (district, day)
);
CREATE INDEX IF NOT EXISTS district_daily_day_idx ON district_daily (day);

-- The last time each meter was heard and through which gateway (from readings, by the refresh).
CREATE TABLE IF NOT EXISTS meter_last_heard (
    meter_id     text PRIMARY KEY,
    gateway_id   text,
    last_heard   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS meter_last_heard_gateway_idx ON meter_last_heard (gateway_id);

CREATE INDEX IF NOT EXISTS meters_verification_idx ON meters (verification_expiry)
    WHERE verification_expiry IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_meter_idx ON alerts (meter_id, first_seen);
CREATE INDEX IF NOT EXISTS billing_results_meter_idx ON billing_results (meter_id, period_start);
