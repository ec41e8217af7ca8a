"""HTTP edge: the billing API, manual reads, and the dashboard pages (FastAPI)."""
