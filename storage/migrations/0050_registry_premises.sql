-- Registry columns several areas share: the premise's address (interruption notices, maps, search),
-- the relation of a sub-meter to its main meter, the meter's role and its tariff group (billing, water
-- balance). Added once here so every area reads the same columns.
ALTER TABLE meters
    ADD COLUMN IF NOT EXISTS street          text,
    ADD COLUMN IF NOT EXISTS house_number    text,
    ADD COLUMN IF NOT EXISTS postcode        text,
    ADD COLUMN IF NOT EXISTS city            text,
    ADD COLUMN IF NOT EXISTS lat             double precision CHECK (lat IS NULL OR lat BETWEEN -90 AND 90),
    ADD COLUMN IF NOT EXISTS lon             double precision CHECK (lon IS NULL OR lon BETWEEN -180 AND 180),
    -- main: an ordinary customer meter; garden: a sub-meter whose water is taken off its parent's sewage
    -- volume; inlet: a district's bulk (input) meter, used by the water balance
    ADD COLUMN IF NOT EXISTS role            text NOT NULL DEFAULT 'main' CHECK (role IN ('main', 'garden', 'inlet')),
    ADD COLUMN IF NOT EXISTS parent_meter_id text,          -- the main meter a garden sub-meter sits behind
    ADD COLUMN IF NOT EXISTS tariff_group    text;
CREATE INDEX IF NOT EXISTS meters_street_idx ON meters (city, street);
CREATE INDEX IF NOT EXISTS meters_parent_idx ON meters (parent_meter_id) WHERE parent_meter_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS meters_role_idx ON meters (role) WHERE role <> 'main';
