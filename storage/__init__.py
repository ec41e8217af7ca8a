"""meterflow storage."""
