"""Ordered schema migrations: NNNN_name.sql (plain SQL) or NNNN_name.py (with upgrade(conn, flavor, timezone))."""
