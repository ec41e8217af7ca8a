"""Frames to readings: wireless M-Bus (decoders.wmbus) and Modbus register profiles (decoders.modbus)."""
