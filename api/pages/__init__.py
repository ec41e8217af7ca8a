"""Server-rendered dashboard pages: access rules, rendering helpers."""
