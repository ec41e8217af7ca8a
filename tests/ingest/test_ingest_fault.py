"""Store-and-forward under faults, against a private Mosquitto run from deploy/mosquitto/meterflow.conf:
20,000 frames while the broker is stopped and restarted twice and the gateway process is killed
(SIGKILL) and restarted once, and the subscriber (persistent session, QoS 1) is away for the second
half, so over a thousand messages wait for it in the broker across a restart (more than Mosquitto's
default per-client queue would keep). It receives every frame, and after deduplication by content,
each exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from ingest_testlib import Broker, Subscriber, make_config

N_FRAMES = 20_000
CHILD = Path(__file__).with_name("fault_child.py")


def unique_frames(corpus: list[bytes], n: int) -> list[bytes]:
    """n distinct frames: corpus frames with the meter id (A-field) replaced by a counter."""
    out = []
    for i in range(n):
        base = bytearray(corpus[i % len(corpus)])
        base[4:8] = i.to_bytes(4, "little")
        out.append(bytes(base))
    assert len(set(out)) == n
    return out


@pytest.mark.slow
def test_no_frame_lost_through_broker_restarts_and_gateway_kill(tmp_path: Path, broker: Broker, prefix: str,
                                                                 corpus_frames: list[bytes]) -> None:
    frames = unique_frames(corpus_frames, N_FRAMES)
    frames_path = tmp_path / "frames.txt"
    frames_path.write_text("\n".join(f.hex() for f in frames))
    # delivery "broker": this test is about the broker's own persistence (a frame leaves the outbox on its
    # PUBACK) while the consumer is away; commit acknowledgements are tested end to end in tests/services
    cfg = make_config(tmp_path, broker.url, prefix, batch_max_frames=10, batch_max_ms=20, dedup_window_s=30,
                      mqtt={"delivery": "broker"})
    cfg_path = tmp_path / "gw.json"
    cfg_path.write_text(cfg.model_dump_json())
    progress = tmp_path / "progress"
    status_topic = f"{prefix}/{cfg.gateway_id}/status"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(CHILD), str(cfg_path), str(frames_path), str(progress),
                                 "100", "0.05"], stderr=subprocess.DEVNULL)

    def wait_progress(n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if progress.exists() and int(progress.read_text() or 0) >= n:
                return
            time.sleep(0.02)
        raise AssertionError(f"gateway did not reach {n} frames")

    def online_since(t: float) -> bool:
        def check(s: Subscriber) -> bool:
            last = json.loads(s.messages.get(status_topic, [b"{}"])[-1])
            return last.get("state") == "online" and last.get("ts", 0) >= t
        return sub.wait_for(check, 15)

    filters = [f"{prefix}/+/wmbus", f"{prefix}/+/status"]
    sub_id = f"fault-sub-{prefix[5:13]}"
    sub = Subscriber(broker.url, filters, client_id=sub_id)
    subs = [sub]
    child = spawn()
    try:
        wait_progress(3000)
        broker.stop()  # outage 1: the gateway keeps storing
        wait_progress(5000)
        restarted = time.time()
        broker.start()
        assert online_since(restarted - 1), "gateway did not come back online"
        wait_progress(8000)
        child.kill()  # the gateway dies without warning ...
        child.wait(10)
        assert sub.wait_for(lambda s: b'"offline"' in s.messages[status_topic][-1], 10), "no last will"
        child = spawn()  # ... and is started again on the same outbox
        sub.close()  # the decoder goes away; its session (and queue) stays in the broker
        wait_progress(12000)
        broker.stop()  # outage 2: the queued messages must survive in the broker's persistence file
        wait_progress(15000)
        broker.start()
        assert child.wait(90) == 0, "the gateway did not drain its outbox"
        sub = Subscriber(broker.url, filters, client_id=sub_id)  # the decoder is back
        subs.append(sub)
        everything = lambda s: len({f["hex"] for f in subs[0].frames + s.frames}) >= N_FRAMES  # noqa: E731
        assert sub.wait_for(everything, 30), (len(subs[0].frames), len(sub.frames))
    finally:
        if child.poll() is None:
            child.kill()
        sub.close()

    assert len(subs[1].batches) > 1000  # waited in the broker, across its restart
    received = Counter(f["hex"] for s in subs for f in s.frames)
    expected = {f.hex().upper() for f in frames}
    assert set(received) == expected  # every frame arrived, nothing foreign
    assert len(received) == N_FRAMES  # after dedup by content: each exactly once
    duplicates = sum(received.values()) - N_FRAMES
    assert duplicates < N_FRAMES  # at-least-once resends are bounded by what was in flight
    print(f"fault test: {sum(received.values())} frames delivered, {duplicates} resent duplicates")
