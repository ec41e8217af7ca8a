-- Core tables shared by both flavours. The readings table and the rollups are created by the
-- flavour module (storage/flavor.py), because only they differ between PostgreSQL and TimescaleDB.

CREATE TABLE IF NOT EXISTS meters (
    meter_id              text PRIMARY KEY,          -- as printed on the meter (8 digits for wM-Bus)
    manufacturer          text,
    model                 text,
    medium                text NOT NULL DEFAULT 'water',
    premise_ref           text,
    customer_ref          text,
    district              text,                      -- DMA
    install_date          date,
    install_index_m3      double precision,
    removal_date          date,
    removal_index_m3      double precision,
    register_digits       smallint NOT NULL DEFAULT 5 CHECK (register_digits BETWEEN 1 AND 12),
    verification_expiry   date,
    aes_key               bytea CHECK (aes_key IS NULL OR length(aes_key) = 16),  -- secret: never exported
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS meters_premise_idx ON meters (premise_ref);
CREATE INDEX IF NOT EXISTS meters_customer_idx ON meters (customer_ref);
CREATE INDEX IF NOT EXISTS meters_district_idx ON meters (district);

-- Every frame received, once (dedup key: digest of the normalised frame), kept for reprocessing.
CREATE TABLE IF NOT EXISTS raw_frames (
    digest        bytea PRIMARY KEY,
    kind          text NOT NULL,                     -- wmbus | modbus | wmbusmeters
    meter_id      text,
    gateway_id    text,
    received_at   timestamptz NOT NULL,
    rssi          smallint,
    frame         bytea NOT NULL,
    decoded       boolean NOT NULL DEFAULT true
);
CREATE INDEX IF NOT EXISTS raw_frames_meter_idx ON raw_frames (meter_id, received_at);
CREATE INDEX IF NOT EXISTS raw_frames_received_idx ON raw_frames (received_at);

-- Frames (or whole messages) that did not decode, with the reason; retried by `meterflow reprocess`.
CREATE TABLE IF NOT EXISTS dead_letters (
    id            bigserial PRIMARY KEY,
    digest        bytea UNIQUE,
    kind          text NOT NULL,
    error_code    text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    meter_id      text,
    manufacturer  text,
    gateway_id    text,
    received_at   timestamptz NOT NULL,
    payload       bytea NOT NULL,
    attempts      integer NOT NULL DEFAULT 1,
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz
);
CREATE INDEX IF NOT EXISTS dead_letters_open_idx ON dead_letters (error_code) WHERE resolved_at IS NULL;

-- Leak and anomaly alerts with a lifecycle: one row per continuing condition.
CREATE TABLE IF NOT EXISTS alerts (
    id            bigserial PRIMARY KEY,
    meter_id      text NOT NULL,
    kind          text NOT NULL,                     -- continuous_flow | night_flow | burst | backflow | stuck | silent | meter_alarm:<word>
    severity      text NOT NULL DEFAULT 'warning',   -- info | warning | critical
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    rate_l_h      double precision,
    volume_m3     double precision,
    message       text,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_idx ON alerts (meter_id, kind) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS alerts_seen_idx ON alerts (last_seen);

-- Billing: one run per invocation; results per meter and period; the audit trail of every edit.
CREATE TABLE IF NOT EXISTS billing_runs (
    run_id        bigserial PRIMARY KEY,
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text NOT NULL DEFAULT 'running',
    config        jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE IF NOT EXISTS billing_results (
    run_id                  bigint NOT NULL REFERENCES billing_runs (run_id) ON DELETE CASCADE,
    meter_id                text NOT NULL,
    period_start            date NOT NULL,
    period_end              date NOT NULL,
    start_index_m3          double precision,
    end_index_m3            double precision,
    consumption_m3          double precision,
    pre_vee_consumption_m3  double precision,
    quality                 text NOT NULL CHECK (quality IN ('ACTUAL', 'ESTIMATED', 'EDITED')),
    method                  text NOT NULL DEFAULT '',
    exceptions              text[] NOT NULL DEFAULT '{}',
    flags                   text[] NOT NULL DEFAULT '{}',
    details                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (run_id, meter_id, period_start)
);
CREATE INDEX IF NOT EXISTS billing_results_period_idx ON billing_results (period_start, period_end, meter_id);

CREATE TABLE IF NOT EXISTS billing_audit (
    id            bigserial PRIMARY KEY,
    run_id        bigint REFERENCES billing_runs (run_id) ON DELETE CASCADE,
    meter_id      text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    rule          text NOT NULL,
    action        text NOT NULL,
    before        jsonb,
    after         jsonb,
    reason        text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS billing_audit_meter_idx ON billing_audit (meter_id, at);
