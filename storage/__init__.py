"""PostgreSQL / TimescaleDB storage: schema migrations, the flavour switch, writers and queries."""
