"""meterflow ingest."""
