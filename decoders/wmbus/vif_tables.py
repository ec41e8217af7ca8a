"""VIF tables of EN 13757-3 (primary, FD and FB extensions): what a code measures and how it scales.

Each entry is (quantity, unit, exponent): value_in_unit = raw * 10**exponent. Units are already the
normalised ones (m3, m3/h, C, kWh, ...), so a table lookup is the whole unit conversion.
"""

from __future__ import annotations

from typing import NamedTuple


class VifInfo(NamedTuple):
    quantity: str  # e.g. "volume", "flow_temperature", "date"
    unit: str  # the name suffix: "m3", "m3h", "c", "kwh", "" (dimensionless) ...
    exponent: int  # decimal scale applied to the raw integer/BCD value


_TIME_UNITS = ("s", "min", "h", "d")
# conversion of a raw count in the coded time unit to the normalised unit
TIME_TO_SECONDS = (1, 60, 3600, 86400)


def _primary() -> dict[int, VifInfo]:
    t: dict[int, VifInfo] = {}
    for n in range(8):
        t[0x00 + n] = VifInfo("energy", "kwh", n - 3 - 3)  # Wh 10^(n-3) -> kWh
        t[0x08 + n] = VifInfo("energy", "gj", n - 9)  # J 10^n -> GJ
        t[0x10 + n] = VifInfo("volume", "m3", n - 6)
        t[0x18 + n] = VifInfo("mass", "kg", n - 3)
        t[0x28 + n] = VifInfo("power", "kw", n - 3 - 3)  # W -> kW
        t[0x30 + n] = VifInfo("power", "gjh", n - 9)
        t[0x38 + n] = VifInfo("volume_flow", "m3h", n - 6)
        t[0x40 + n] = VifInfo("volume_flow", "m3h", n - 7)  # m3/min: scaled by 60 in records
        t[0x48 + n] = VifInfo("volume_flow", "m3h", n - 9)  # m3/s: scaled by 3600 in records
        t[0x50 + n] = VifInfo("mass_flow", "kgh", n - 3)
    for n in range(4):
        t[0x20 + n] = VifInfo("on_time", _TIME_UNITS[n], 0)
        t[0x24 + n] = VifInfo("operating_time", _TIME_UNITS[n], 0)
        t[0x58 + n] = VifInfo("flow_temperature", "c", n - 3)
        t[0x5C + n] = VifInfo("return_temperature", "c", n - 3)
        t[0x60 + n] = VifInfo("temperature_difference", "k", n - 3)
        t[0x64 + n] = VifInfo("external_temperature", "c", n - 3)
        t[0x68 + n] = VifInfo("pressure", "bar", n - 3)
        t[0x70 + n] = VifInfo("averaging_duration", _TIME_UNITS[n], 0)
        t[0x74 + n] = VifInfo("actuality_duration", _TIME_UNITS[n], 0)
    t[0x6C] = VifInfo("date", "date", 0)
    t[0x6D] = VifInfo("datetime", "datetime", 0)
    t[0x6E] = VifInfo("hca", "", 0)
    t[0x78] = VifInfo("fabrication_no", "", 0)
    t[0x79] = VifInfo("enhanced_id", "", 0)
    t[0x7A] = VifInfo("bus_address", "", 0)
    return t


def _fd() -> dict[int, VifInfo]:
    t: dict[int, VifInfo] = {}
    for n in range(4):
        t[0x00 + n] = VifInfo("credit", "", n - 3)
        t[0x04 + n] = VifInfo("debit", "", n - 3)
        t[0x24 + n] = VifInfo("storage_interval", _TIME_UNITS[n], 0)
        t[0x2C + n] = VifInfo("duration_since_readout", _TIME_UNITS[n], 0)
        t[0x30 + n] = VifInfo("tariff_start", _TIME_UNITS[n], 0)
        t[0x38 + n] = VifInfo("tariff_duration", _TIME_UNITS[n], 0)
        t[0x68 + n] = VifInfo("duration_since_cumulation", _TIME_UNITS[n], 0)
        t[0x6C + n] = VifInfo("battery_operating_time", _TIME_UNITS[n], 0)
    names = {
        0x08: "access_number", 0x09: "medium", 0x0A: "manufacturer", 0x0B: "parameter_set_id",
        0x0C: "model_version", 0x0D: "hardware_version", 0x0E: "firmware_version",
        0x0F: "software_version", 0x10: "customer_location", 0x11: "customer", 0x12: "access_code_user",
        0x13: "access_code_operator", 0x14: "access_code_system_operator", 0x15: "access_code_developer",
        0x16: "password", 0x17: "error_flags", 0x18: "error_mask", 0x1A: "digital_output",
        0x1B: "digital_input", 0x1C: "baud_rate", 0x1D: "response_delay", 0x1E: "retry",
        0x20: "first_storage", 0x21: "last_storage", 0x22: "storage_size", 0x28: "storage_interval_months",
        0x29: "storage_interval_years", 0x3A: "dimensionless", 0x60: "reset_counter",
        0x61: "cumulation_counter", 0x62: "control_signal", 0x63: "day_of_week", 0x64: "week_number",
        0x65: "day_change_time", 0x66: "parameter_activation", 0x67: "special_supplier_info",
        0x70: "battery_change_datetime", 0x71: "rssi_dbm", 0x72: "day_light_saving", 0x73: "listening_window",
        0x75: "cold_warm_temperature_limit", 0x76: "cumulative_max_power",
    }
    for code, name in names.items():
        t[code] = VifInfo(name, "", 0)
    t[0x74] = VifInfo("remaining_battery_life", "d", 0)
    for n in range(16):
        t[0x40 + n] = VifInfo("voltage", "v", n - 9)
        t[0x50 + n] = VifInfo("current", "a", n - 12)
    return t


def _fb() -> dict[int, VifInfo]:
    t: dict[int, VifInfo] = {}
    for n in range(2):
        t[0x00 + n] = VifInfo("energy", "kwh", n - 1 + 3)  # MWh -> kWh
        t[0x08 + n] = VifInfo("energy", "gj", n - 1)
        t[0x10 + n] = VifInfo("volume", "m3", n + 2)
        t[0x18 + n] = VifInfo("mass", "kg", n + 2 + 3)
        t[0x28 + n] = VifInfo("power", "kw", n - 1 + 3)
        t[0x30 + n] = VifInfo("power", "gjh", n - 1)
        t[0x1A + n] = VifInfo("relative_humidity", "pct", n - 1)
    for n in range(4):
        t[0x58 + n] = VifInfo("flow_temperature", "f", n - 3)
        t[0x5C + n] = VifInfo("return_temperature", "f", n - 3)
        t[0x60 + n] = VifInfo("temperature_difference", "f", n - 3)
        t[0x64 + n] = VifInfo("external_temperature", "f", n - 3)
        t[0x70 + n] = VifInfo("cold_warm_temperature_limit", "f", n - 3)
        t[0x74 + n] = VifInfo("cold_warm_temperature_limit", "c", n - 3)
    t[0x21] = VifInfo("volume", "ft3", -1)
    t[0x22] = VifInfo("volume", "gal", -1)
    t[0x23] = VifInfo("volume", "gal", 0)
    t[0x24] = VifInfo("volume_flow", "galm", -3)
    t[0x25] = VifInfo("volume_flow", "galm", 0)
    t[0x26] = VifInfo("volume_flow", "galh", 0)
    return t


PRIMARY: dict[int, VifInfo] = _primary()
FD_TABLE: dict[int, VifInfo] = _fd()
FB_TABLE: dict[int, VifInfo] = _fb()
