"""meterflow pipelines."""
