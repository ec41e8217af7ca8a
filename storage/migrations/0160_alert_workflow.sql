-- The dispatcher's alert workflow (issue 19): who acknowledged an alert (incident), who it is assigned
-- to, and every action on it (acknowledge, assign, comment, close with a reason, reopen) with who and
-- when. The actor is the name of the authenticated user or token (api.pages.auth.require_analyst).
ALTER TABLE alerts
    ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz,
    ADD COLUMN IF NOT EXISTS acknowledged_by text,
    ADD COLUMN IF NOT EXISTS assigned_to     text,
    ADD COLUMN IF NOT EXISTS assigned_at     timestamptz;

CREATE TABLE IF NOT EXISTS alert_events (
    id        bigserial PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    meter_id  text NOT NULL,                -- copied from the alert: the meter page lists its events
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL CHECK (action IN ('acknowledge', 'assign', 'comment', 'close', 'reopen')),
    note      text NOT NULL DEFAULT '',
    details   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS alert_events_alert_idx ON alert_events (alert_id, at);
CREATE INDEX IF NOT EXISTS alert_events_meter_idx ON alert_events (meter_id, at);
CREATE INDEX IF NOT EXISTS alert_events_actor_idx ON alert_events (actor, at);
CREATE INDEX IF NOT EXISTS alerts_open_idx ON alerts (kind, first_seen) WHERE state = 'open';
