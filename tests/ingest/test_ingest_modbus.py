"""Modbus: every profile's vectors decode as stated; the gateway polls pymodbus' own TCP server on a
schedule and publishes raw register words that decode_registers turns into readings."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ingest_testlib import ModbusTestServer, Subscriber, make_config

from decoders.modbus import decode_registers
from decoders.modbus.profiles import PROFILES, WIDTH, Profile
from decoders.reading import DecodeError, Reading
from ingest.gateway import Gateway

CASES = [(p.name, i) for p in PROFILES.values() for i in range(len(p.vectors))]


@pytest.mark.parametrize(("profile_name", "index"), CASES)
def test_profile_vectors(profile_name: str, index: int) -> None:
    profile = PROFILES[profile_name]
    vec = profile.vectors[index]
    reading = decode_registers(profile_name, vec.address, list(vec.words), meter_id="FM-1")
    assert isinstance(reading, Reading), reading
    assert reading.meter_id == "FM-1" and reading.device_type == profile.device_type
    assert reading.total_m3 == pytest.approx(vec.total_m3)
    assert reading.flow_m3h == (pytest.approx(vec.flow_m3h) if vec.flow_m3h is not None else None)
    assert reading.alarms == vec.alarms
    for name, value in vec.fields:
        assert reading.fields[name] == pytest.approx(value)


@pytest.mark.parametrize("profile", PROFILES.values(), ids=lambda p: p.name)
def test_profile_is_consistent(profile: Profile) -> None:
    names = [r.name for r in profile.registers]
    assert len(names) == len(set(names))
    assert set(profile.total) <= set(names) and (profile.flow is None or profile.flow in names)
    assert len(profile.manufacturer) == 3 and len(profile.vectors) >= 2
    for reg in profile.registers:  # every register is read by exactly one block
        covering = [b for b in profile.blocks if b.address <= reg.address
                    and reg.address + WIDTH[reg.type] <= b.address + b.count]
        assert len(covering) == 1, reg.name


def test_decode_errors() -> None:
    assert isinstance(decode_registers("nope", 0, [1]), DecodeError)
    err = decode_registers("tuf2000m", 0, [0] * 8)  # block stops before the totalizer
    assert isinstance(err, DecodeError) and err.code == "bad_modbus"
    err = decode_registers("tuf2000m", 0, [70000] * 16)
    assert isinstance(err, DecodeError) and err.code == "bad_modbus"
    nan = [0x0000, 0x7FC0] + [0] * 14  # NaN flow
    assert isinstance(decode_registers("tuf2000m", 0, nan), DecodeError)


def test_gateway_polls_modbus_tcp(tmp_path: Path, mqtt_url: str, prefix: str) -> None:
    tuf, ldg = PROFILES["tuf2000m"].vectors[0], PROFILES["ldg_mag"].vectors[0]
    server = ModbusTestServer({1: {tuf.address: list(tuf.words)}, 7: {ldg.address: list(ldg.words)}})
    cfg = make_config(tmp_path, mqtt_url, prefix, modbus=[{
        "name": "station", "transport": "tcp", "host": "127.0.0.1", "tcp_port": server.port, "timeout_s": 0.5,
        "meters": [
            {"meter_id": "FM-TUF", "profile": "tuf2000m", "unit": 1, "interval_s": 0.2},
            {"meter_id": "FM-MAG", "profile": "ldg_mag", "unit": 7, "interval_s": 0.2},
            {"meter_id": "FM-GONE", "profile": "pulse_u32_litres", "unit": 9, "interval_s": 0.2},
        ]}])
    sub = Subscriber(mqtt_url, [f"{prefix}/+/modbus"])
    gw = Gateway(cfg)
    stop = threading.Event()
    runner = threading.Thread(target=gw.run, args=(stop,), daemon=True)
    runner.start()
    try:
        def enough(s: Subscriber) -> bool:
            ids = [f["meter_id"] for f in s.frames]
            return ids.count("FM-TUF") >= 3 and ids.count("FM-MAG") >= 3
        assert sub.wait_for(enough, 10), sub.frames
    finally:
        stop.set()
        runner.join(10)
        server.close()
        sub.close()
    assert not runner.is_alive()
    batch = sub.batches[0]
    assert batch.kind == "modbus" and batch.gateway_id == cfg.gateway_id
    by_meter = {f["meter_id"]: f for f in sub.frames}
    assert set(by_meter) == {"FM-TUF", "FM-MAG"}  # the silent meter is counted, not published
    for meter_id, vec, name in (("FM-TUF", tuf, "tuf2000m"), ("FM-MAG", ldg, "ldg_mag")):
        frame = by_meter[meter_id]
        assert set(frame) == {"t", "meter_id", "profile", "address", "words"}
        assert frame["profile"] == name and frame["words"] == list(vec.words)
        reading = decode_registers(frame["profile"], frame["address"], frame["words"], meter_id)
        assert isinstance(reading, Reading) and reading.total_m3 == pytest.approx(vec.total_m3)
    assert gw.counters.bad_input["modbus-station:modbus_error"] >= 2


def test_gateway_polls_modbus_rtu_on_a_serial_line(tmp_path: Path, mqtt_url: str, prefix: str) -> None:
    """RS-485 stand-in: a pty pair joined by socat, pymodbus' RTU server on one end, the gateway on the other."""
    if not shutil.which("socat"):
        pytest.skip("socat is not installed")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"])
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        vec = PROFILES["pulse_u32_litres"].vectors[0]
        server = ModbusTestServer({5: {vec.address: list(vec.words)}}, serial_port=str(a))
        cfg = make_config(tmp_path, mqtt_url, prefix, modbus=[{
            "name": "rs485", "transport": "rtu", "port": str(b), "baudrate": 19200, "timeout_s": 0.5,
            "meters": [{"meter_id": "PULSE-5", "profile": "pulse_u32_litres", "unit": 5, "interval_s": 0.3}]}])
        sub = Subscriber(mqtt_url, [f"{prefix}/+/modbus"])
        gw = Gateway(cfg)
        stop = threading.Event()
        runner = threading.Thread(target=gw.run, args=(stop,), daemon=True)
        runner.start()
        try:
            assert sub.wait_for(lambda s: len(s.frames) >= 2, 10), gw.counters.bad_input
        finally:
            stop.set()
            runner.join(10)
            server.close()
            sub.close()
        frame = sub.frames[0]
        reading = decode_registers(frame["profile"], frame["address"], frame["words"], frame["meter_id"])
        assert isinstance(reading, Reading) and reading.total_m3 == pytest.approx(vec.total_m3)
    finally:
        socat.terminate()
        socat.wait(5)
