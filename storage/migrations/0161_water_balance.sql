-- District water balance (issue 19): per district and local day the input measured by the district's
-- inlet (bulk) meters (meters.role = 'inlet') and the minimum night flow of that input (the smallest
-- hourly inflow between 02:00 and 04:00 local). consumption_m3 / night_flow_l_h of district_daily now
-- count customer meters only (role 'main'; garden sub-meters sit behind a main meter), so
-- input - consumption is the district's non-revenue water.
ALTER TABLE district_daily
    ADD COLUMN IF NOT EXISTS input_m3          double precision,
    ADD COLUMN IF NOT EXISTS n_inlets          integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS input_mnf_l_h     double precision;

-- Search: meter, customer, premise and address lookups by prefix, case-insensitive.
CREATE INDEX IF NOT EXISTS meters_search_customer_idx ON meters (lower(customer_ref) text_pattern_ops);
CREATE INDEX IF NOT EXISTS meters_search_premise_idx ON meters (lower(premise_ref) text_pattern_ops);
CREATE INDEX IF NOT EXISTS meters_search_street_idx ON meters (lower(street) text_pattern_ops);
CREATE INDEX IF NOT EXISTS meters_search_id_idx ON meters (lower(meter_id) text_pattern_ops);
