"""Command-line edges: parse arguments, call the core, print results."""
