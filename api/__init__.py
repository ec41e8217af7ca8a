"""meterflow api."""
