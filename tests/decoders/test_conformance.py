"""Every water case of the shared corpus: id, total_m3 and target_m3 as the reference decoder prints them."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from wmbus_corpus import CORPUS, keys_for, load_cases

from decoders.reading import ERROR_CODES, DecodeError, Reading
from decoders.wmbus import WmbusDecoder, peek_header
from meterflow.plausibility import check_index

CASES = load_cases()
WATER = [c for c in CASES if c["is_water"]]
OTHER = [c for c in CASES if not c["is_water"]]
BY_ID = {c["case_id"]: c for c in WATER}

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


@cache
def mismatches(case_id: str) -> tuple[str, ...]:
    """How our decoding of a water case differs from the reference decoder's output (empty: it matches).

    Where the reference prints a value no register can hold (-0.001 m3 from an all-ones "no value yet"
    billing register), ours must refuse it: no value in the column, the refusal noted in the fields.
    """
    case = BY_ID[case_id]
    result = _decode(case)
    if not isinstance(result, Reading):
        return (f"{result.code}: {result.detail}",)
    expected = case["expected"]
    out: list[str] = []
    if result.meter_id != expected["id"]:
        out.append(f"id {result.meter_id} != {expected['id']}")
    for name in ("total_m3", "target_m3"):
        want = expected.get(name)
        if not isinstance(want, (int, float)) or isinstance(want, bool):
            continue
        got = getattr(result, name)
        if check_index(want) is not None:
            if got is not None or f"refused_{name}" not in result.fields:
                out.append(f"{name}: the reference's implausible {want} is not refused (got {got})")
        elif got is None:
            out.append(f"{name} missing")
        elif abs(got - want) > 0.0005:
            out.append(f"{name}: {got} != {want}")
    return tuple(out)


def _params() -> list[Any]:
    out = []
    for case in WATER:
        marks = []
        if case["case_id"] in EXPECTED_FAILURES:
            marks.append(pytest.mark.xfail(reason=EXPECTED_FAILURES[case["case_id"]], strict=True))
        out.append(pytest.param(case["case_id"], id=case["case_id"], marks=marks))
    return out


@pytest.mark.parametrize("case_id", _params())
def test_water_case(case_id: str) -> None:
    assert mismatches(case_id) == ()


def test_pass_rate_at_least_98_percent() -> None:
    """Counted from decoding every water case, not from the list of known failures."""
    assert len(WATER) >= 160
    failing = {case["case_id"] for case in WATER if mismatches(case["case_id"])}
    assert (len(WATER) - len(failing)) / len(WATER) >= 0.98, sorted(failing)
    assert failing == set(EXPECTED_FAILURES), "EXPECTED_FAILURES no longer says which cases fail"


def test_an_implausible_reference_value_is_refused_not_stored() -> None:
    # gwfwater: 4413 FFFFFFFF, an int32 all-ones billing register the reference prints as -0.001 m3
    case = BY_ID["driver_xmq_test:gwfwater.xmq:143"]
    result = _decode(case)
    assert isinstance(result, Reading)
    assert (result.total_m3, result.target_m3) == (0.062, None)
    assert result.fields["refused_target_m3"] == "-0.001 negative_index"


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
