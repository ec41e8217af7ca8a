"""Notifications of alerts through pluggable channels (webhook, e-mail, SMS gateway): an edge of the system."""
