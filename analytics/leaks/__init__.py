"""Leak and anomaly detectors."""
