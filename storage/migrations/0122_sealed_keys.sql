-- AES keys are sealed (AES-GCM under the master key, meterflow/secrets.py): the column holds a longer value.
ALTER TABLE meters DROP CONSTRAINT IF EXISTS meters_aes_key_check;
ALTER TABLE meters ADD CONSTRAINT meters_aes_key_sealed_check
    CHECK (aes_key IS NULL OR length(aes_key) = 16 OR substring(aes_key FROM 1 FOR 4) = 'MFK1'::bytea);
