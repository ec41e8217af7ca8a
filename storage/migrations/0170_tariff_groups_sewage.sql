-- Billing as Polish utilities bill (issue 18): tariff changes per tariff group, sewage volume and segments.

-- A tariff change now belongs to one tariff group (meters.tariff_group; a meter without one is in 'default').
-- Rows that existed before were global, so each is copied to every group the registry knows: every meter is
-- split exactly as before this migration.
ALTER TABLE tariff_changes
    ADD COLUMN IF NOT EXISTS tariff_group text NOT NULL DEFAULT 'default',
    ADD COLUMN IF NOT EXISTS created_by   text NOT NULL DEFAULT 'migration',
    ADD COLUMN IF NOT EXISTS created_at   timestamptz NOT NULL DEFAULT now();
ALTER TABLE tariff_changes DROP CONSTRAINT IF EXISTS tariff_changes_pkey;
INSERT INTO tariff_changes (effective_date, tariff_code, note, tariff_group)
    SELECT t.effective_date, t.tariff_code, t.note, g.tariff_group
    FROM tariff_changes t
    CROSS JOIN (SELECT DISTINCT tariff_group FROM meters WHERE tariff_group IS NOT NULL
                AND tariff_group <> 'default') g
    WHERE t.tariff_group = 'default';
ALTER TABLE tariff_changes ADD PRIMARY KEY (tariff_group, effective_date);

-- Every billing row carries water and sewage volume, the tariff segment it bills and who it is billed to
-- (as the registry said when the run was computed).
ALTER TABLE billing_results
    ADD COLUMN IF NOT EXISTS water_m3       double precision,
    ADD COLUMN IF NOT EXISTS sewage_m3      double precision,
    ADD COLUMN IF NOT EXISTS segment_start  date,
    ADD COLUMN IF NOT EXISTS segment_end    date,
    ADD COLUMN IF NOT EXISTS customer_ref   text,
    ADD COLUMN IF NOT EXISTS premise_ref    text,
    ADD COLUMN IF NOT EXISTS tariff_group   text,
    ADD COLUMN IF NOT EXISTS role           text;
