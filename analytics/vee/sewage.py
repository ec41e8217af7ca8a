"""Rule 15, sewage volume: a main meter's water minus its garden sub-meters' water in the same period.

Polish utilities bill sewage on the water that reaches the sewer: water metered by a garden sub-meter
(podwodomierz ogrodowy) behind a main meter is taken off that main meter's sewage volume. Runs after every
meter's rows exist (rules 1-14), on the plain result dicts, so an exchanged, estimated or split meter needs
nothing special here.

- A garden row: sewage 0. An inlet (district bulk meter) row: sewage null (it is not a customer's bill).
- A family is the main meters of one premise (one main meter, or an exchanged one and its successor; a main
  meter without premise_ref is a family alone) and every garden whose `parent_meter_id` names one of them.
  sewage = max(0, main water - gardens' water) over the period; the family's main rows (exchange, tariff
  segments) get that total shared in proportion to each row's water, the last row taking the rounding
  remainder so the rows add up exactly.
- Gardens above the main meter: exception `GARDEN_EXCEEDS_MAIN` on the main rows, sewage 0.
- A garden whose water was estimated (no read in the period): flag `GARDEN_ESTIMATED` on the main rows.
- A garden or main meter without a figure (e.g. NO_END_READ): the main meter's sewage is null (its exception
  already holds the bill).
"""

from __future__ import annotations

import json
from typing import Any

GardenAudit = dict[str, Any]


def _water(rows: list[dict[str, Any]]) -> float | None:
    vals = [r["consumption_m3"] for r in rows]
    return None if not vals or any(v is None for v in vals) else float(sum(vals))


def _share(rows: list[dict[str, Any]], total: float, decimals: int) -> None:
    """Spread `total` over the rows in proportion to their water; the rows add up exactly to the total."""
    water = sum(float(r["consumption_m3"]) for r in rows)
    left = round(total, decimals)
    for i, r in enumerate(rows):
        if i == len(rows) - 1:
            part = left
        else:
            part = round(total * float(r["consumption_m3"]) / water, decimals) if water > 0 else 0.0
        r["sewage_m3"] = round(part, decimals)
        left = round(left - part, decimals)


def apply_sewage(results: list[dict[str, Any]], roles: dict[str, str], parents: dict[str, str],
                 premises: dict[str, str], decimals: int, counts: dict[str, int]) -> list[GardenAudit]:
    """Set `water_m3` and `sewage_m3` on every result row (in place); returns the audit rows of rule 15.

    `roles`: meter_id -> role ('main' when unknown); `parents`: garden -> its main meter; `premises`: meter ->
    premise_ref. The main meters of one premise are one family (an exchanged main meter and its successor share
    the premise, rule 2), so a garden is taken off whichever of them measured the period."""
    def family(meter_id: str) -> str:
        premise = premises.get(meter_id)
        return f"premise:{premise}" if premise else f"meter:{meter_id}"

    by_meter: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        r["water_m3"] = r["consumption_m3"]
        by_meter.setdefault(r["meter_id"], []).append(r)
    gardens: dict[str, list[str]] = {}
    mains: dict[str, list[str]] = {}
    for meter_id in by_meter:
        role = roles.get(meter_id, "main")
        if role == "main":
            mains.setdefault(family(meter_id), []).append(meter_id)
        elif role == "garden" and meter_id in parents:
            gardens.setdefault(family(parents[meter_id]), []).append(meter_id)
        for r in by_meter[meter_id]:
            r["sewage_m3"] = r["consumption_m3"] if role == "main" else (0.0 if role == "garden" else None)
    audit: list[GardenAudit] = []
    for key, subs in gardens.items():
        members = sorted(mains.get(key, []))
        if not members:
            continue  # the main meter is in no result (e.g. another chunk): nothing to take it off
        rows = [r for m in members for r in by_meter[m]]
        main = _water(rows)
        garden_rows = [g for s in sorted(subs) for g in by_meter[s]]
        garden = _water(garden_rows)
        details: dict[str, Any] = {"garden_meters": sorted(subs),
                                   "garden_m3": None if garden is None else round(garden, decimals)}
        if any(g["quality"] == "ESTIMATED" for g in garden_rows):
            _mark(rows, "flags", "GARDEN_ESTIMATED")
            counts["GARDEN_ESTIMATED"] = counts.get("GARDEN_ESTIMATED", 0) + 1
        _details(rows, details)
        if main is None or garden is None:
            for r in rows:
                r["sewage_m3"] = None
            continue
        sewage = main - garden
        if sewage < 0:
            _mark(rows, "exceptions", "GARDEN_EXCEEDS_MAIN")
            counts["GARDEN_EXCEEDS_MAIN"] = counts.get("GARDEN_EXCEEDS_MAIN", 0) + 1
            audit += [{"meter_id": m, "rule": "15", "action": "exception",
                       "before": json.dumps({"water_m3": round(main, decimals)}),
                       "after": json.dumps({"sewage_m3": 0.0}),
                       "reason": f"garden sub-meters {', '.join(sorted(subs))} used {garden:.3f} m3, more than the "
                                 f"main meter's {main:.3f} m3; sewage set to 0"} for m in members]
            sewage = 0.0
        counts["GARDEN_DEDUCTED"] = counts.get("GARDEN_DEDUCTED", 0) + 1
        _share(rows, sewage, decimals)
    return audit


def _mark(rows: list[dict[str, Any]], key: str, name: str) -> None:
    for r in rows:
        if name not in r[key]:
            r[key] = [*r[key], name]


def _details(rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    for r in rows:
        d = json.loads(r["details"]) if r["details"] else {}
        r["details"] = json.dumps({**d, **extra}, sort_keys=True)
