"""meterflow: from radio to bill for water utilities."""

__version__ = "0.1.0"
