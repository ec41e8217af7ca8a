"""Validation, estimation and editing of billing consumption."""
