"""Every driver's own test telegrams decode to their expected values."""

from __future__ import annotations

from typing import Any

import pytest

from decoders.reading import Reading
from decoders.wmbus import WmbusDecoder, peek_header
from decoders.wmbus.drivers import ALL_DRIVERS, DriverSpec, Vector

PARAMS = [
    pytest.param(spec, vec, id=f"{spec.name}-{i}") for spec in ALL_DRIVERS for i, vec in enumerate(spec.vectors)
]


@pytest.mark.parametrize(("spec", "vector"), PARAMS)
def test_driver_vector(spec: DriverSpec, vector: Vector) -> None:
    tel = bytes.fromhex(vector.telegram_hex)
    keys: dict[str, bytes] = {}
    head = peek_header(tel)
    if vector.key_hex and head:
        keys[head[0]] = bytes.fromhex(vector.key_hex)
        if "id" in vector.expected:
            keys[vector.expected["id"]] = bytes.fromhex(vector.key_hex)
    dec = WmbusDecoder(keys=keys)
    for earlier in vector.preceding_hex:
        dec.decode(bytes.fromhex(earlier))
    result = dec.decode(tel)
    assert isinstance(result, Reading), result
    assert result.driver == spec.name
    out: dict[str, Any] = result.to_json()
    for name, want in vector.expected.items():
        if isinstance(want, float | int) and not isinstance(want, bool):
            assert abs(out[name] - want) <= 0.0005, (name, out.get(name), want)
        else:
            assert out[name] == want, (name, out.get(name), want)


def test_every_driver_has_vectors_or_is_data_only() -> None:
    names = [spec.name for spec in ALL_DRIVERS]
    assert len(names) == len(set(names))
    special = [spec for spec in ALL_DRIVERS if spec.special or spec.mfct_data or spec.record_hook]
    assert all(spec.vectors for spec in special)
