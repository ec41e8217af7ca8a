"""Long-running edge processes (the decoder service)."""
