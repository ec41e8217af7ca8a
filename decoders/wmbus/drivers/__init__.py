"""Driver registry: every model's DriverSpec, looked up by (manufacturer, version, device type, CI)."""

from __future__ import annotations

from decoders.wmbus.drivers import apator, bmeters, diehl, engelmann, kamstrup, oms, qundis, techem, zenner
from decoders.wmbus.drivers.base import DriverSpec, FrameView, SpecialResult, Vector

ALL_DRIVERS: tuple[DriverSpec, ...] = (
    *apator.DRIVERS, *bmeters.DRIVERS, *diehl.DRIVERS, *engelmann.DRIVERS, *kamstrup.DRIVERS,
    *oms.DRIVERS, *qundis.DRIVERS, *techem.DRIVERS, *zenner.DRIVERS,
)

GENERIC = DriverSpec(name="generic", detect=())

_exact: dict[tuple[str, int, int], DriverSpec] = {}
_by_type: dict[tuple[str, int], DriverSpec] = {}
_by_mfct: dict[str, DriverSpec] = {}
for _spec in ALL_DRIVERS:
    for _m, _v, _t in _spec.detect:
        if _v is not None and _t is not None:
            _exact.setdefault((_m, _v, _t), _spec)
        elif _t is not None:
            _by_type.setdefault((_m, _t), _spec)
        else:
            _by_mfct.setdefault(_m, _spec)

_special_ci: dict[tuple[str, int], DriverSpec] = {}
for _spec in ALL_DRIVERS:
    for _m, _v, _t in _spec.detect:
        if _v is None and _t is None:
            for _ci in _spec.special_cis:
                _special_ci.setdefault((_m, _ci), _spec)


def find_driver(manufacturer: str, version: int, device_type: int, ci: int | None = None) -> DriverSpec:
    """Most specific match first; a manufacturer-wide driver only for its own manufacturer CIs."""
    spec = _exact.get((manufacturer, version, device_type))
    if spec is not None:
        return spec
    if ci is not None:
        spec = _special_ci.get((manufacturer, ci))
        if spec is not None:
            return spec
    spec = _by_type.get((manufacturer, device_type))
    if spec is not None:
        return spec
    spec = _by_mfct.get(manufacturer)
    if spec is not None and not spec.special_cis:
        return spec
    return GENERIC


__all__ = ["ALL_DRIVERS", "GENERIC", "DriverSpec", "FrameView", "SpecialResult", "Vector", "find_driver"]
