-- Who was the customer of a meter from when to when (move-in inclusive, move-out exclusive; NULL = still).
-- A customer sees a meter's data only inside their own tenancy, never the previous tenant's history.
CREATE TABLE IF NOT EXISTS meter_customers (
    meter_id      text NOT NULL REFERENCES meters (meter_id) ON DELETE CASCADE,
    customer_ref  text NOT NULL,
    move_in       date NOT NULL,
    move_out      date,
    PRIMARY KEY (meter_id, move_in),
    CHECK (move_out IS NULL OR move_out > move_in)
);
CREATE INDEX IF NOT EXISTS meter_customers_customer_idx ON meter_customers (customer_ref);

-- Customers already named in the registry keep their meters with all their history.
INSERT INTO meter_customers (meter_id, customer_ref, move_in)
SELECT meter_id, customer_ref, DATE '2000-01-01' FROM meters
WHERE customer_ref IS NOT NULL
ON CONFLICT DO NOTHING;
