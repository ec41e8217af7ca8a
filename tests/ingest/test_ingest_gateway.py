"""The gateway against the real broker: envelope and topics per meterflow/envelope.py, batching,
duplicate suppression on receive time, retained status, no secret in logs, the CLI and SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest_testlib import REPO, Subscriber, make_config

from decoders.wmbus import normalise_frame
from ingest.config import GatewayConfig
from ingest.frames import ReceivedFrame
from ingest.gateway import Gateway
from meterflow.envelope import topic
from meterflow.logs import JsonFormatter, LogfmtFormatter

T0 = 1_732_180_000.0


def test_publish_frames_batches_dedup_and_status(tmp_path: Path, mqtt_url: str, prefix: str,
                                                 corpus_frames: list[bytes]) -> None:
    cfg = make_config(tmp_path, mqtt_url, prefix, batch_max_frames=50, dedup_window_s=16)
    sub = Subscriber(mqtt_url, [f"{prefix}/+/wmbus", f"{prefix}/+/status"])
    frames = [ReceivedFrame(d, T0 + i * 0.01, -60 - i % 30) for i, d in enumerate(corpus_frames[:250])]
    gw = Gateway(cfg)
    try:
        assert gw.publish_frames(frames) == 250
        assert gw.drain(10)
        assert sub.wait_for(lambda s: len(s.frames) >= 250, 10)
        # T1 repeats and a second stick hearing the same frames, within the window: counted, not sent
        repeats = [ReceivedFrame(f.data, f.received_at + 8, -90) for f in frames]
        assert gw.publish_frames(repeats) == 0
        # after the window (on receive time, not wall clock) the meter is published again
        later = [ReceivedFrame(f.data, f.received_at + 86400, -70) for f in frames[:10]]
        assert gw.publish_frames(later) == 10
        assert gw.drain(10)
        gw.publish_status()
        status_topic = topic(prefix, cfg.gateway_id, "status")
        assert sub.wait_for(lambda s: any(b'"online"' in m for m in s.messages.get(status_topic, [])), 5)
    finally:
        gw.close()
    assert sub.wait_for(lambda s: b'"offline"' in s.messages[status_topic][-1], 5)
    sub.close()

    wmbus_topic = topic(prefix, cfg.gateway_id, "wmbus")
    assert set(sub.messages) == {wmbus_topic, status_topic}
    assert all(b.kind == "wmbus" and b.gateway_id == cfg.gateway_id for b in sub.batches)
    assert max(len(b.frames) for b in sub.batches) <= 50
    assert len({b.batch_id for b in sub.batches}) == len(sub.batches)
    assert [bytes.fromhex(f["hex"]) for f in sub.frames] == [f.data for f in frames] + [f.data for f in later]
    assert sub.frames[0] == {"t": T0, "hex": frames[0].data.hex().upper(), "rssi": -60}

    status = json.loads([m for m in sub.messages[status_topic] if b"\"online\"" in m][-1])
    assert status["gw"] == cfg.gateway_id and status["version"]
    counters = status["counters"]
    assert counters["frames_in"] == 510 and counters["published"] == 260 and counters["suppressed"] == 250
    assert counters["dropped"] == 0 and counters["outbox_depth"] == 0
    assert status["rssi"]["n"] >= 260 and status["rssi"]["min"] == -90  # summary since the last status

    # the retained status outlives the connection: a late subscriber sees the gateway is offline
    late = Subscriber(mqtt_url, [status_topic])
    assert late.wait_for(lambda s: bool(s.messages.get(status_topic)), 5)
    assert json.loads(late.messages[status_topic][-1]) == {"state": "offline", "gw": cfg.gateway_id}
    late.close()


def test_password_never_logged(tmp_path: Path, mqtt_url: str, prefix: str, caplog: pytest.LogCaptureFixture,
                               corpus_frames: list[bytes]) -> None:
    secret = "pw-Zq81-never-in-logs"
    cfg = make_config(tmp_path, mqtt_url, prefix, mqtt={"username": "gw-user", "password": secret})
    caplog.set_level(logging.DEBUG)
    decoder = Subscriber(mqtt_url, [f"{prefix}/+/wmbus"])  # acknowledges like a decoder
    gw = Gateway(cfg)
    gw.publish_frames([ReceivedFrame(corpus_frames[0], T0)])
    assert gw.drain(10)
    gw.close()
    decoder.close()
    assert cfg.mqtt.password_value() == secret
    assert secret not in json.dumps(cfg.masked())
    text = "\n".join(LogfmtFormatter().format(r) + JsonFormatter().format(r) for r in caplog.records)
    assert "gw-user" in text and secret not in text


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        GatewayConfig.model_validate({"gateway_id": "has/slash"})
    with pytest.raises(ValueError):
        GatewayConfig.model_validate({"gateway_id": "gw", "mqtt": {"url": "mqtt://u:pw@host:1883"}})
    with pytest.raises(ValueError):
        GatewayConfig.model_validate({"gateway_id": "gw", "modbus": [{"meters": [
            {"meter_id": "x", "profile": "no-such-profile"}]}]})
    example = GatewayConfig.from_toml(REPO / "ingest" / "gateway.example.toml")
    assert {s.type for s in example.sources} == {"imst", "amber", "rawhex"}
    assert example.modbus and example.mqtt.tls


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cli.main import main; main()", *args]


def test_cli_help_and_check(tmp_path: Path) -> None:
    out = subprocess.run(_cli("gateway", "--help"), capture_output=True, text=True, check=True).stdout
    assert "Example: meterflow gateway --config" in out
    out = subprocess.run(_cli("bench", "gateway", "--help"), capture_output=True, text=True, check=True).stdout
    assert "Example: meterflow bench gateway" in out
    cfg = tmp_path / "gw.toml"
    cfg.write_text('gateway_id = "gw-x"\n[mqtt]\nurl = "mqtts://b:8883"\nusername = "u"\npassword = "hunter2-secret"\n')
    res = subprocess.run(_cli("gateway", "--config", str(cfg), "--check"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["mqtt"]["password"] == "***" and "hunter2" not in res.stdout + res.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('gateway_id = "gw x"\n')
    res = subprocess.run(_cli("gateway", "--config", str(bad)), capture_output=True, text=True)
    assert res.returncode != 0 and "gateway_id" in res.stderr
    missing = tmp_path / "missing.toml"
    missing.write_text(f'gateway_id = "gw-y"\n[mqtt]\nusername = "u"\npassword_file = "{tmp_path}/none"\n'
                       f'[outbox]\npath = "{tmp_path}/o.sqlite3"\n')
    res = subprocess.run(_cli("gateway", "--config", str(missing)), capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "cannot start the gateway" in res.stderr


def test_gateway_command_reads_stdin_and_stops_on_sigterm(tmp_path: Path, mqtt_url: str, prefix: str,
                                                          corpus_frames: list[bytes]) -> None:
    cfg_path = tmp_path / "gw.toml"
    cfg_path.write_text(f"""
gateway_id = "gw-cli"
batch_max_frames = 100
batch_max_ms = 20
[mqtt]
url = "{mqtt_url}"
topic_prefix = "{prefix}"
[outbox]
path = "{tmp_path / 'outbox.sqlite3'}"
[[sources]]
type = "rawhex"
port = "-"
""")
    sub = Subscriber(mqtt_url, [f"{prefix}/+/wmbus", f"{prefix}/+/status"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli("--log-format", "json", "gateway", "--config", str(cfg_path)), stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    assert proc.stdin is not None and proc.stderr is not None
    lines = [f.hex() for f in corpus_frames[:100]]
    proc.stdin.write(("\n".join(lines[:50]) + "\nnot a frame\n" + "\n".join(lines[50:]) + "\n").encode())
    proc.stdin.flush()
    try:
        assert sub.wait_for(lambda s: len(s.frames) >= 100, 15)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()[-2000:]
    status_topic = f"{prefix}/gw-cli/status"
    assert sub.wait_for(lambda s: b'"offline"' in s.messages.get(status_topic, [b""])[-1], 5)
    sub.close()
    # published as the link layer normalises them: one corpus frame still carries its two format B CRCs
    expected = [normalise_frame(f) for f in corpus_frames[:100]]
    assert sum(e != f for e, f in zip(expected, corpus_frames[:100], strict=True)) == 1
    assert [bytes.fromhex(f["hex"]) for f in sub.frames] == expected
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert any(r["msg"] == "bad input from source" and r.get("reason") == "not_hex" for r in logs)
    assert all(r.get("gateway_id") == "gw-cli" for r in logs if r["logger"].startswith("ingest"))
    assert time.time()  # the process stopped cleanly within the timeout


def test_a_puback_is_not_delivery_only_a_commit_ack_is(tmp_path: Path, mqtt_url: str, prefix: str,
                                                        corpus_frames: list[bytes]) -> None:
    """No subscriber (PUBACK 0x10) and a subscriber that never acknowledges commits both leave the frames in
    the outbox, sent again after ack_timeout_s; the first commit acknowledgement empties it."""
    cfg = make_config(tmp_path, mqtt_url, prefix, batch_max_frames=20, mqtt={"ack_timeout_s": 1.0})
    frames = [ReceivedFrame(d, T0 + i, -70) for i, d in enumerate(corpus_frames[:60])]
    with Gateway(cfg) as gw:
        assert gw.publish_frames(frames) == 60
        assert not gw.drain(2.0)  # PUBACK 0x10 "no matching subscribers": not delivered
        assert gw.outbox.depth == 60 and gw.counters.published == 0
        silent = Subscriber(mqtt_url, [f"{prefix}/+/wmbus"], ack=False)  # receives, never commits
        assert silent.wait_for(lambda s: len(s.frames) >= 60, 10)
        assert not gw.drain(2.5)
        assert gw.outbox.depth == 60 and gw.counters.published == 0
        assert silent.wait_for(lambda s: len(s.frames) >= 120, 10)  # unconfirmed batches were sent again
        assert gw.counters.resent >= 60
        silent.close()
        decoder = Subscriber(mqtt_url, [f"{prefix}/+/wmbus"])
        assert gw.drain(15)
        assert gw.outbox.depth == 0 and gw.counters.published == 60
        decoder.close()
    assert {f["hex"] for f in decoder.frames} == {f.data.hex().upper() for f in frames}
