-- Supply interruptions (area-level: a street or a district), planned works, street subscriptions and the
-- notices sent about them; and the premise's contact for notices, with the consent to receive them.
ALTER TABLE meters
    ADD COLUMN IF NOT EXISTS phone          text,
    ADD COLUMN IF NOT EXISTS email          text,
    ADD COLUMN IF NOT EXISTS notice_consent boolean NOT NULL DEFAULT false;

-- Planned works: a district, or some of its streets (empty = the whole district), and a window.
CREATE TABLE IF NOT EXISTS planned_works (
    id            bigserial PRIMARY KEY,
    district      text NOT NULL,
    streets       text[] NOT NULL DEFAULT '{}',
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL CHECK (ends_at > starts_at),
    note          text NOT NULL DEFAULT '',
    created_by    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz
);
CREATE INDEX IF NOT EXISTS planned_works_window_idx ON planned_works (starts_at, ends_at);

-- One row per interruption: open while it lasts (end_at null), closed when water (or the radio) is back.
CREATE TABLE IF NOT EXISTS interruptions (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('supply', 'communication')),
    cause         text NOT NULL,                     -- standstill | dry_alarm | planned | silence
    district      text NOT NULL,
    street        text,                              -- null: the whole district
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    start_at      timestamptz NOT NULL,
    end_at        timestamptz,                       -- null while ongoing
    expected_end  timestamptz,                       -- planned works' end, when known
    detected_at   timestamptz,
    meters        text[] NOT NULL DEFAULT '{}',
    score         double precision,
    planned_id    bigint REFERENCES planned_works (id) ON DELETE SET NULL,
    version       integer NOT NULL DEFAULT 1,        -- bumped when what residents are told changes
    opened_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (state = 'open' OR end_at IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS interruptions_one_open_idx
    ON interruptions (kind, district, coalesce(street, '')) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS interruptions_time_idx ON interruptions (start_at, end_at);

-- Who is told about a street: by API, by SMS keyword, or from a premise whose contact consented.
CREATE TABLE IF NOT EXISTS notice_subscriptions (
    id          bigserial PRIMARY KEY,
    street      text NOT NULL,
    phone       text,
    email       text,
    source      text NOT NULL CHECK (source IN ('api', 'sms', 'consent')),
    active      boolean NOT NULL DEFAULT true,
    created_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (phone IS NOT NULL OR email IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS notice_subscriptions_one_idx
    ON notice_subscriptions (lower(street), coalesce(phone, ''), coalesce(email, ''));

-- Every notice (sent, failed, dry run) per interruption version and subscription: the 'exactly one' guard.
CREATE TABLE IF NOT EXISTS interruption_notices (
    id               bigserial PRIMARY KEY,
    interruption_id  bigint NOT NULL REFERENCES interruptions (id) ON DELETE CASCADE,
    subscription_id  bigint NOT NULL REFERENCES notice_subscriptions (id) ON DELETE CASCADE,
    version          integer NOT NULL,
    phase            text NOT NULL,                  -- started | changed | ended
    channel          text NOT NULL,
    recipient        text NOT NULL DEFAULT '',
    status           text NOT NULL CHECK (status IN ('sent', 'failed', 'dry_run')),
    error            text NOT NULL DEFAULT '',
    message          text NOT NULL DEFAULT '',
    sent_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS interruption_notices_once_idx
    ON interruption_notices (interruption_id, subscription_id, version) WHERE status = 'sent';
