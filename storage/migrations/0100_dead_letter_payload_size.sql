-- Dead-letter payloads are capped (storage/writer.py DEAD_LETTER_PAYLOAD_MAX): the stored payload is the
-- head of what arrived, payload_bytes how long the whole was.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_bytes integer;
