"""Prefect flows: thin orchestration around storage queries and analytics functions."""
