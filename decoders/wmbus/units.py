"""Record -> readable field name and normalised value (reference decoder style: total_m3, target_m3, ...)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from decoders.wmbus.records import Record, normalise_time

_FUNCTION_SUFFIX = ("", "_max", "_min", "_at_error")
_QUANTITY_NAMES = {
    "volume_flow": "volume_flow",
    "flow_temperature": "flow_temperature",
    "return_temperature": "return_temperature",
    "external_temperature": "external_temperature",
    "temperature_difference": "temperature_difference",
    "energy": "total_energy_consumption",
    "power": "power",
    "mass": "mass",
    "mass_flow": "mass_flow",
    "pressure": "pressure",
    "error_flags": "error_flags",
}


def _base(rec: Record) -> str:
    q = rec.info.quantity
    if q == "volume":
        if rec.backward:
            return "total_backward" if rec.storage == 0 else f"total_backward_storage_{rec.storage}"
        if rec.storage == 0:
            return "total"
        if rec.storage == 1:
            return "target"
        return f"history_{rec.storage}"
    if q in ("date", "datetime"):
        kind = "date" if q == "date" else "datetime"
        if rec.storage == 0:
            return f"meter_{kind}"
        if rec.storage == 1:
            return f"target_{kind}"
        return f"history_{rec.storage}_{kind}"
    name = _QUANTITY_NAMES.get(q, q)
    if rec.storage:
        name += f"_storage_{rec.storage}"
    return name


def field_name(rec: Record) -> str:
    name = _base(rec)
    if rec.tariff:
        name += f"_tariff_{rec.tariff}"
    if rec.subunit:
        name += f"_subunit_{rec.subunit}"
    name += _FUNCTION_SUFFIX[rec.function]
    unit = rec.info.unit
    if unit in ("s", "min", "h", "d"):
        return name  # the time suffix is added with the value
    if unit in ("date", "datetime") or not unit:
        return name
    return f"{name}_{unit}"


def field_value(rec: Record) -> tuple[str, Any]:
    """(name, JSON-friendly value) for one record."""
    name = field_name(rec)
    value = rec.value
    unit = rec.info.unit
    if unit in ("s", "min", "h", "d") and isinstance(value, (int, float)):
        suffix, converted = normalise_time(rec.info, float(value))
        return f"{name}_{suffix}", round(converted, 6)
    if isinstance(value, bytes):
        return name, value.hex()
    if isinstance(value, (date, datetime, str, int, float)) or value is None:
        return name, value
    return name, str(value)
