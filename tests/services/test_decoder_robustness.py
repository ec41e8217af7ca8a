"""Nothing a message contains stops the decoder: each bad frame becomes its own dead letter with a reason,
the frames around it are staged; values are checked before the database; the writer is supervised."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from decoder_support import count

from cli.embedded import free_port
from decoders.reading import DecodeError, Reading
from fixtures import telegrams as omsgen
from meterflow.config import Settings
from meterflow.envelope import FrameBatch, encode_batch
from services.decoder import DecoderService
from services.processor import FrameProcessor
from storage.registry import import_keys
from storage.writer import DEAD_LETTER_PAYLOAD_MAX, BatchWriter, DeadLetter

POISON = "18442D2C785634121B077A010000000707FFFFFFFFFFFFFF7F"
NOW = datetime.now(UTC).replace(microsecond=0)


def _message(frames: list[Any], gw: str = "gw-01", envelope_gw: str | None = None) -> tuple[str, bytes]:
    return f"p/v1/{gw}/wmbus", encode_batch(FrameBatch(envelope_gw or gw, "wmbus", frames, f"{gw}:1:7", 0.0))


def _good(n: int) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    tels = list(omsgen.fleet_telegrams(n, n, start=NOW - timedelta(hours=2)))
    keys = {t.meter_id: omsgen.meter_key(t.meter_id) for t in tels}
    return [{"t": NOW.timestamp(), "hex": t.frame.hex(), "rssi": -70} for t in tels], keys


def test_the_poison_frame_is_one_dead_letter_and_its_batch_goes_on() -> None:
    good, keys = _good(6)
    frames = [*good[:3], {"t": NOW.timestamp(), "hex": POISON}, *good[3:]]
    out = FrameProcessor(keys).process(*_message(frames))
    assert sum(r.decoded for r in out.rows) == 6  # (the poison may be archived undecoded in raw_frames)
    assert [(d.error_code, d.meter_id, d.payload.hex().upper()) for d in out.dead] == [
        ("value_out_of_range", "12345678", POISON)]
    assert out.batch_id == "gw-01:1:7" and out.gateway_id == "gw-01"


def test_entries_that_are_not_objects_are_dead_letters_one_by_one() -> None:
    good, keys = _good(2)
    out = FrameProcessor(keys).process(*_message([good[0], 7, "text", None, [1], good[1]]))
    assert len(out.rows) == 2
    assert [(d.error_code, d.payload) for d in out.dead] == [
        ("bad_frame", b"7"), ("bad_frame", b'"text"'), ("bad_frame", b"null"), ("bad_frame", b"[1]")]


def test_deeply_nested_json_is_ordinary_bad_input() -> None:
    payload = b'{"v": 1, "batch": "gw-01:1:9", "frames": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    out = FrameProcessor({}).process("p/v1/gw-01/wmbus", payload)
    assert out.rows == [] and [d.error_code for d in out.dead] == ["bad_envelope"]
    assert "nested too deeply" in out.dead[0].detail
    assert out.batch_id == "gw-01:1:9"  # still acknowledged to its gateway: it must not be resent forever


def test_the_topic_names_the_gateway_never_the_envelope() -> None:
    good, keys = _good(2)
    out = FrameProcessor(keys).process(*_message([*good, {"hex": "zz"}], gw="gw-real", envelope_gw="gw-spoofed"))
    assert {r.gateway_id for r in out.rows} == {"gw-real"} and {d.gateway_id for d in out.dead} == {"gw-real"}


class _Decoder:
    """Stands in for the radio decoder core: returns the readings a test needs, as a broken meter might."""

    def __init__(self, results: dict[str, Reading | DecodeError | Exception]) -> None:
        self.results = results

    def decode(self, frame: bytes, normalised: bool = False) -> Reading | DecodeError:
        res = self.results[frame.hex()]
        if isinstance(res, Exception):
            raise res
        return res


def _reading(**kw: Any) -> Reading:
    base: dict[str, Any] = {"meter_id": "12345678", "manufacturer": "KAM", "version": 1, "device_type": "water",
                            "driver": "test", "total_m3": 12.5, "meter_time": NOW - timedelta(hours=1)}
    return Reading(**{**base, **kw})


CASES: list[tuple[Reading | Exception, str | None]] = [
    (_reading(), None),
    (_reading(total_m3=float("inf")), "not_finite"),
    (_reading(total_m3=-5.0), "negative_index"),
    (_reading(total_m3=1e308), "beyond_register"),
    (_reading(target_m3=float("nan")), "not_finite"),
    (_reading(flow_m3h=float("inf")), "bad_flow"),
    (_reading(meter_time=datetime(2000, 1, 1, tzinfo=UTC), total_m3=1.0), None),  # unset clock: receive time
    (_reading(meter_time=datetime(1999, 12, 1, tzinfo=UTC), total_m3=1.0), None),
    (_reading(meter_id="1234\x005678"), "bad_meter_id"),
    (_reading(meter_id="9" * 5000), "bad_meter_id"),
    (_reading(fields={"huge": 2**70}), "value_out_of_range"),
    (_reading(status="LEAK\x00\x01", alarms=("le\x00ak",), fields={"note": "a\x00b"}), None),
    (RuntimeError("decoder bug"), "decoder_failed"),
]


def test_decoded_values_are_checked_before_the_database() -> None:
    frames, results = [], {}
    for i, (res, _) in enumerate(CASES):
        frame = bytes([14, 0x44, 0x2D, 0x2C]) + i.to_bytes(4, "little") + bytes([1, 7, 0x7A, 0, 0, 0, 0])
        frames.append({"t": NOW.timestamp(), "hex": frame.hex()})
        results[frame.hex()] = res
    out = FrameProcessor({}, wmbus_decoder=_Decoder(results)).process(*_message(frames))
    refused = {d.payload[4]: d.error_code for d in out.dead}
    assert refused == {i: code for i, (_, code) in enumerate(CASES) if code}
    staged = {r.frame[4]: r for r in out.rows}
    assert sorted(staged) == [i for i, (_, code) in enumerate(CASES) if not code]
    assert staged[6].time == staged[7].time == NOW  # a meter clock never set is not the key
    clean = staged[11]
    assert clean.status == "LEAK" and clean.alarms == ["leak"] and clean.fields == b'{"note":"ab"}'


def test_dead_letter_payloads_are_capped_and_the_rest_counted(clean_db: psycopg.Connection, database_url: str) -> None:
    big = b"\xAB" * 10_000_000
    writer = BatchWriter(database_url)
    writer.write([], [DeadLetter(b"d" * 16, "wmbus", "bad_envelope", "garbage", None, None, "gw-1", NOW, big)])
    writer.close()
    row = clean_db.execute("SELECT length(payload), payload_bytes FROM dead_letters").fetchone()
    assert row == (DEAD_LETTER_PAYLOAD_MAX, 10_000_000)


def test_a_failed_writer_takes_the_service_down_loudly(clean_db: psycopg.Connection, settings: Settings,
                                                       database_url: str, mqtt_url: str, prefix: str) -> None:
    good, keys = _good(1)
    import_keys(clean_db, [{"meter_id": m, "key": k} for m, k in keys.items()])
    port = free_port()
    service = DecoderService(settings, database_url, mqtt_url, client_id=f"mftest-sup-{prefix[7:15]}",
                             topic_prefix=prefix, metrics_port=port, session_expiry=0)
    service.start()
    try:
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read() == b"ok\n"

        def bug(*args: Any) -> None:
            raise RuntimeError("a bug in accounting")

        service._account = bug  # type: ignore[method-assign]  # fault injection: the writer thread dies
        from decoder_support import Publisher

        pub = Publisher(mqtt_url)
        pub.publish(f"{prefix}/gw-01/wmbus", encode_batch(FrameBatch("gw-01", "wmbus", good, "gw-01:1:1", 0.0)))
        pub.close()
        deadline = time.monotonic() + 20
        while not service.failed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.failed == "RuntimeError: a bug in accounting"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
        assert err.value.code == 503
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "meterflow_decoder_up 0.0" in metrics
    finally:
        assert service.stop(timeout=5) is False  # not a clean stop: the command exits non-zero
    assert count(database_url, "SELECT count(*) FROM readings") == 1  # committed before the bug struck


def test_puback_timeouts_of_the_embedded_broker_are_back_pressure_not_tracebacks(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from cli.embedded import BackPressureLog

    logger = logging.getLogger("test.amqtt.broker")
    logger.addFilter(BackPressureLog(every=60))
    with caplog.at_level(logging.INFO, logger="test.amqtt.broker"):
        for _ in range(30):
            try:
                raise TimeoutError("Timeout waiting for PUBACK for packet ID 7")
            except TimeoutError:
                logger.exception("Task failed and will be skipped")
        logger.error("something else broke")
    records = [(r.levelname, r.getMessage()[:15], r.exc_info) for r in caplog.records]
    assert records == [("WARNING", "back-pressure: ", None), ("ERROR", "something else ", None)]
