"""meterflow dashboards."""
