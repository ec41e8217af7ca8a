-- Dashboards: reading coverage and freshness without scanning every meter per page view.
-- Rebuilt by storage.chart_queries.refresh_dashboards from meter_last_heard and meters.

-- Meters per district / gateway whose last reading falls in each UTC hour ('-infinity': never heard).
CREATE TABLE IF NOT EXISTS heard_hourly (
    dim     text NOT NULL CHECK (dim IN ('district', 'gateway')),
    key     text NOT NULL,
    hour    timestamptz NOT NULL,
    meters  integer NOT NULL,
    PRIMARY KEY (dim, hour, key)
);

CREATE INDEX IF NOT EXISTS meter_last_heard_time_idx ON meter_last_heard (last_heard);
