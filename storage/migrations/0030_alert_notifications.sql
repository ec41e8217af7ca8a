-- Every message sent (or tried, or dry-run) about an alert, per channel: the rate limit and the audit trail.
CREATE TABLE IF NOT EXISTS alert_notifications (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel     text NOT NULL,                       -- webhook | email | sms
    recipient   text NOT NULL DEFAULT '',
    sent_at     timestamptz NOT NULL DEFAULT now(),
    status      text NOT NULL CHECK (status IN ('sent', 'failed', 'dry_run')),
    error       text NOT NULL DEFAULT '',
    message     text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_notifications_alert_idx ON alert_notifications (alert_id, channel, sent_at);
