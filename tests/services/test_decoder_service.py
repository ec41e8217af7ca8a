"""DecoderService end to end on the real broker and PostgreSQL: duplicates, bad messages, keys, metrics."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from decoder_support import PrivateMosquitto, Publisher, count

from bench.ingest import build_messages
from cli.main import cli
from fixtures import telegrams as omsgen
from meterflow.config import Settings
from services.decoder import DecoderService
from storage.registry import import_keys


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _service(settings: Settings, dsn: str, url: str, prefix: str, **kw: object) -> DecoderService:
    return DecoderService(settings, dsn, url, client_id=f"mftest-dec-{uuid.uuid4().hex[:8]}", topic_prefix=prefix,
                          metrics_port=0, session_expiry=60, **kw)  # type: ignore[arg-type]


def test_every_frame_published_twice_is_one_reading(clean_db: psycopg.Connection, settings: Settings,
                                                    database_url: str, mqtt_url: str, prefix: str) -> None:
    tels = list(omsgen.fleet_telegrams(40, 400, start=datetime.now(UTC) - timedelta(days=2)))
    import_keys(clean_db, [{"meter_id": omsgen.meter_id(i), "key": omsgen.meter_key(omsgen.meter_id(i))}
                           for i in range(40)])
    messages = build_messages(tels, prefix, 50, 2, time.time())
    # the same frames heard by two other gateways, at other receive times
    echoes = build_messages(tels, prefix.replace("/v1", "") + "/v1", 70, 3, time.time() + 5)
    echoes = [(t.replace("bench-gw", "echo-gw"), p.replace(b"bench-gw", b"echo-gw")) for t, p in echoes]
    wmbusmeters = json.dumps({"id": "76348799", "meter": "multical21", "media": "water", "total_m3": 6.4,
                              "timestamp": "2026-11-20T10:00:00Z"}).encode()
    service = _service(settings, database_url, mqtt_url, prefix)
    service.start()
    pub = Publisher(mqtt_url)
    try:
        for topic, payload in messages + messages + echoes:
            pub.publish(topic, payload)
        pub.publish(f"{prefix}/gw-x/wmbus", b"{broken")
        pub.publish(f"{prefix}/pi-1/wmbusmeters", wmbusmeters)
        pub.publish(f"{prefix}/pi-2/wmbusmeters", wmbusmeters)
        total_msgs = 2 * len(messages) + len(echoes) + 3
        wait_for(lambda: service.stats()["messages"] >= total_msgs)
        assert service.wait_idle(0.3, timeout=10)
        stats = service.stats()
    finally:
        pub.close()
        service.stop(retire=True)
    assert count(database_url, "SELECT count(*) FROM readings WHERE source = 'wmbus'") == 400
    assert count(database_url, "SELECT count(*) FROM readings WHERE source = 'wmbusmeters'") == 1
    assert count(database_url, "SELECT count(*) FROM raw_frames") == 401
    assert stats["readings"] == 401 and stats["duplicates"] == 2 * 400 + 1
    assert stats["frames"] == 3 * 400 + 3
    with psycopg.connect(database_url) as conn:
        dead = conn.execute("SELECT error_code, gateway_id, payload FROM dead_letters").fetchall()
    assert dead == [("bad_envelope", "gw-x", b"{broken")]
    assert service.dead_by_code() == {"bad_envelope": 1}


def test_keys_import_then_reprocess_resolves_no_key_frames(clean_db: psycopg.Connection, settings: Settings,
                                                           database_url: str, mqtt_url: str, prefix: str,
                                                           tmp_path: Path) -> None:
    tels = list(omsgen.fleet_telegrams(5, 20, start=datetime.now(UTC) - timedelta(hours=6)))
    service = _service(settings, database_url, mqtt_url, prefix, key_refresh_seconds=0.5)
    service.start()
    pub = Publisher(mqtt_url)
    try:
        for topic, payload in build_messages(tels[:10], prefix, 10, 1, time.time()):
            pub.publish(topic, payload)
        wait_for(lambda: service.stats()["dead_letters"] >= 10)
        # keys arrive: import with the command (the secret must not be echoed anywhere)
        keys_csv = tmp_path / "keys.csv"
        secret = omsgen.meter_key(omsgen.meter_id(0)).hex()
        keys_csv.write_text("meter_id,key_hex\n" + "".join(
            f"{omsgen.meter_id(i)},{omsgen.meter_key(omsgen.meter_id(i)).hex()}\n" for i in range(5)) + "bad,xyz\n")
        env = {"METERFLOW_DATABASE_URL": database_url, "METERFLOW_LOG_LEVEL": "DEBUG"}
        result = CliRunner().invoke(cli, ["keys", "import", str(keys_csv)], env=env)
        assert result.exit_code == 0, result.output
        assert "5 imported" in result.output and ":7:" in result.output and secret not in result.output
        # the live service picks the keys up after a no_key frame (refresh at most every 0.5 s here)
        time.sleep(0.6)
        for topic, payload in build_messages(tels[10:], prefix, 10, 1, time.time()):
            pub.publish(topic, payload)
        wait_for(lambda: service.stats()["readings"] >= 10, timeout=20)
        result = CliRunner().invoke(cli, ["reprocess", "--dead-letters"], env=env)
        assert result.exit_code == 0, result.output
        assert "10 resolved" in result.output
    finally:
        pub.close()
        service.stop(retire=True)
    assert count(database_url, "SELECT count(*) FROM readings") == 20
    assert count(database_url, "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL") == 0


def test_meters_import_and_list(clean_db: psycopg.Connection, database_url: str, tmp_path: Path) -> None:
    registry = tmp_path / "meters.csv"
    registry.write_text(
        "meter_id,premise_ref,customer_ref,district,install_date,install_index_m3,removal_date,removal_index_m3,"
        "register_digits,verification_expiry,manufacturer,model\n"
        "10000001,P1,C1,DMA-1,2020-01-15,0.5,,,5,2030-01-01,KAM,multical21\n"
        "10000002,P2,C2,DMA-1,not-a-date,0,,,5,,,\n"
        "10000003,P3,C3,DMA-2,2021-05-01,1.25,,,6,,,\n"
    )
    env = {"METERFLOW_DATABASE_URL": database_url}
    import_keys(clean_db, [{"meter_id": "10000001", "key": bytes(range(16))}])
    result = CliRunner().invoke(cli, ["meters", "import", str(registry)], env=env)
    assert result.exit_code == 0, result.output
    assert "2 imported" in result.output and "meters.csv:3:" in result.output
    listed = CliRunner().invoke(cli, ["meters", "list", "--format", "json"], env=env)
    rows = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    assert [r["meter_id"] for r in rows] == ["10000001", "10000003"]
    assert rows[0]["has_key"] is True and rows[0]["district"] == "DMA-1" and rows[0]["model"] == "multical21"
    assert "aes_key" not in listed.output and bytes(range(16)).hex() not in listed.output
    # a registry import leaves the key alone
    assert count(database_url, "SELECT count(*) FROM meters WHERE aes_key IS NOT NULL") == 1


@pytest.mark.parametrize("name", ["decoder", "reprocess", "keys", "meters"])
def test_help_has_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0 and "Example: " in result.output and "meterflow" in result.output.split("Example: ")[1]


def test_bench_ingest_help() -> None:
    result = CliRunner().invoke(cli, ["bench", "ingest", "--help"])
    assert result.exit_code == 0 and "Example: meterflow bench ingest" in result.output


def test_decoder_without_broker_url_says_what_to_set() -> None:
    result = CliRunner().invoke(cli, ["decoder"], env={"METERFLOW_MQTT_URL": "", "METERFLOW_MQTT__URL": "",
                                                       "METERFLOW_CONFIG_FILE": None})
    assert result.exit_code != 0 and "METERFLOW_MQTT_URL" in result.output


def test_metrics_endpoint_counts_frames(clean_db: psycopg.Connection, settings: Settings, database_url: str,
                                        mqtt_url: str, prefix: str) -> None:
    import httpx

    from cli.embedded import free_port

    port = free_port()
    tels = list(omsgen.fleet_telegrams(3, 6, start=datetime.now(UTC) - timedelta(hours=1)))
    service = DecoderService(settings, database_url, mqtt_url, client_id=f"mftest-dec-{uuid.uuid4().hex[:8]}",
                             topic_prefix=prefix, metrics_port=port, session_expiry=60)
    service.start()
    pub = Publisher(mqtt_url)
    try:
        for topic, payload in build_messages(tels, prefix, 6, 1, time.time()):
            pub.publish(topic, payload)
        wait_for(lambda: service.stats()["frames"] >= 6)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        pub.close()
        service.stop(retire=True)
    assert 'meterflow_decoder_dead_letters_total{reason="no_key"}' in text
    assert "meterflow_decoder_batch_seconds_bucket" in text and "meterflow_decoder_frames_total" in text


def test_embedded_mqtt311_broker_plain_subscription(clean_db: psycopg.Connection, settings: Settings,
                                                    database_url: str, prefix: str) -> None:
    from cli.embedded import EmbeddedBroker

    broker = EmbeddedBroker()
    url = broker.start()
    tels = list(omsgen.fleet_telegrams(20, 400, start=datetime.now(UTC) - timedelta(days=1)))
    import_keys(clean_db, [{"meter_id": omsgen.meter_id(i), "key": omsgen.meter_key(omsgen.meter_id(i))}
                           for i in range(20)])
    service = _service(settings, database_url, url, prefix)
    try:
        service.start()
        assert service.v5 is False
        pub = Publisher(url)
        messages = build_messages(tels, prefix, 20, 2, time.time())
        for topic, payload in messages + messages[:5]:
            pub.publish(topic, payload)
        wait_for(lambda: service.stats()["messages"] >= len(messages) + 5)
        pub.close()
    finally:
        service.stop(retire=True)  # MQTT 3.1.1: ends the session by reconnecting with a clean session
        broker.stop()
    assert count(database_url, "SELECT count(*) FROM readings") == 400


def test_a_row_the_database_rejects_is_isolated_and_dead_lettered(clean_db: psycopg.Connection, settings: Settings,
                                                                   database_url: str, mqtt_url: str) -> None:
    """A NUL in decoded text is refused before the database (a dead letter, no database error); a row the
    database still refuses (here a NUL smuggled past the processor) is isolated: the rest of the batch is
    stored."""
    tels = list(omsgen.fleet_telegrams(5, 40, start=datetime.now(UTC) - timedelta(days=1)))
    service = DecoderService(settings, database_url, mqtt_url, metrics_port=0)
    keys = {omsgen.meter_id(i): omsgen.meter_key(omsgen.meter_id(i)) for i in range(5)}
    service.keys.update(keys)
    rows, dead = [], []
    for topic, payload in build_messages(tels, "p/v1", 40, 1, time.time()):
        r, d = service.processor.process(topic, payload).split()
        rows += r
        dead += d
    with_nul = json.dumps({"id": "7777", "timestamp": "2026-11-20T10:00:00Z", "total_m3": 1.0,
                           "note": "bad\u0000byte"}).encode()
    r, d = service.processor.process("p/v1/pi-1/wmbusmeters", with_nul).split()
    assert r == [] and [x.error_code for x in d] == ["control_characters"]  # refused, not a database error
    dead += d
    plain = json.dumps({"id": "7777", "timestamp": "2026-11-20T10:00:00Z", "total_m3": 1.0}).encode()
    r, d = service.processor.process("p/v1/pi-1/wmbusmeters", plain).split()
    rows.insert(17, r[0])
    smuggled = dataclasses.replace(r[0], digest=b"x" * 16, meter_id="77\x0077", time=r[0].time + timedelta(hours=1))
    rows.insert(3, smuggled)
    result = service.write_isolating(rows, dead)
    service.writer.close()
    assert result.readings == 41 and result.dead_by_code == {"bad_record": 1, "control_characters": 1}
    assert count(database_url, "SELECT count(*) FROM readings") == 41
    with psycopg.connect(database_url) as conn:
        rejected = conn.execute("SELECT error_code, kind, meter_id, gateway_id, payload FROM dead_letters"
                                " WHERE error_code = 'bad_record'").fetchone()
    assert rejected is not None and rejected[:4] == ("bad_record", "wmbusmeters", "7777", "pi-1")
    assert bytes(rejected[4]) == plain


def test_two_decoders_share_the_load_and_a_retired_one_stops_taking_its_share(
        clean_db: psycopg.Connection, settings: Settings, database_url: str, private_broker: PrivateMosquitto,
        prefix: str) -> None:
    """MQTT 5 shared subscription: N decoders split the messages. Mosquitto keeps queueing an offline
    member's share for its persistent session, so a decoder leaving for good must retire its session."""
    tels = list(omsgen.fleet_telegrams(10, 400, start=datetime.now(UTC) - timedelta(days=1)))
    import_keys(clean_db, [{"meter_id": omsgen.meter_id(i), "key": omsgen.meter_key(omsgen.meter_id(i))}
                           for i in range(10)])
    url = private_broker.url
    a, b = _service(settings, database_url, url, prefix), _service(settings, database_url, url, prefix)
    a.start()
    b.start()
    assert a.v5 and b.v5
    pub = Publisher(url)
    messages = build_messages(tels, prefix, 10, 2, time.time())
    try:
        for topic, payload in messages[:20]:
            pub.publish(topic, payload)
        wait_for(lambda: a.stats()["messages"] + b.stats()["messages"] >= 20)
        assert a.stats()["messages"] > 0 and b.stats()["messages"] > 0  # both took a share
        b.stop(retire=True)
        for topic, payload in messages[20:]:
            pub.publish(topic, payload)
        wait_for(lambda: a.stats()["messages"] + b.stats()["messages"] >= len(messages))
    finally:
        pub.close()
        a.stop(retire=True)
        b.stop(retire=True)
    assert count(database_url, "SELECT count(*) FROM readings") == 400
