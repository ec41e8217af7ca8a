"""meterflow ingest: the field gateway.

sources (dongles/ + sources.py, modbus_poller.py) -> dedup.py -> outbox.py (SQLite WAL) ->
publisher.py (batched QoS 1, delete on PUBACK) -> broker, with status.py / counters.py on the side.
gateway.py ties them together; config.py is the typed TOML; see ingest/README.md.
"""
