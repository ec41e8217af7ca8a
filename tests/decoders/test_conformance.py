"""Every water case of the shared corpus: id, total_m3 and target_m3 as the reference decoder prints them."""

from __future__ import annotations

from typing import Any

import pytest
from wmbus_corpus import CORPUS, keys_for, load_cases

from decoders.reading import ERROR_CODES, DecodeError, Reading
from decoders.wmbus import WmbusDecoder, peek_header

CASES = load_cases()
WATER = [c for c in CASES if c["is_water"]]
OTHER = [c for c in CASES if not c["is_water"]]

# case_id -> why it fails (strict xfail: fixing one makes the suite say so)
EXPECTED_FAILURES: dict[str, str] = {
    # none at present; add "case_id": "reason" here (strict xfail) when a case cannot be matched
}

pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus not found at {CORPUS}")


def _decode(case: dict[str, Any]) -> Reading | DecodeError:
    tel = bytes.fromhex(case["telegram_hex"])
    head = peek_header(tel)
    dec = WmbusDecoder(keys=keys_for(case, head[0] if head else None))
    for earlier in case["preceding_telegrams_hex"]:
        dec.decode(bytes.fromhex(earlier))
    return dec.decode(tel)


def _params() -> list[Any]:
    out = []
    for case in WATER:
        marks = []
        if case["case_id"] in EXPECTED_FAILURES:
            marks.append(pytest.mark.xfail(reason=EXPECTED_FAILURES[case["case_id"]], strict=True))
        out.append(pytest.param(case, id=case["case_id"], marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_water_case(case: dict[str, Any]) -> None:
    result = _decode(case)
    assert isinstance(result, Reading), result
    expected = case["expected"]
    assert result.meter_id == expected["id"]
    for name in ("total_m3", "target_m3"):
        want = expected.get(name)
        if isinstance(want, (int, float)):
            got = getattr(result, name)
            assert got is not None, f"{name} missing"
            assert abs(got - want) <= 0.0005, f"{name}: {got} != {want}"


def test_pass_rate_at_least_98_percent() -> None:
    assert len(WATER) >= 160
    assert (len(WATER) - len(EXPECTED_FAILURES)) / len(WATER) >= 0.98


def test_other_media_do_not_crash_and_mostly_decode() -> None:
    decoded = 0
    for case in OTHER:
        result = _decode(case)
        assert isinstance(result, (Reading, DecodeError))
        if isinstance(result, DecodeError):
            assert result.code in ERROR_CODES
        else:
            decoded += 1
    assert decoded / len(OTHER) >= 0.85
