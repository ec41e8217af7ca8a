"""Re-exports of the Diehl helpers the decoder core needs (interpretation, REAL_DATA, default key)."""

from __future__ import annotations

from decoders.wmbus.drivers.diehl import DIEHL_DEFAULT_AES_KEY, interpretation, real_data_decode

__all__ = ["DIEHL_DEFAULT_AES_KEY", "interpretation", "real_data_decode"]
