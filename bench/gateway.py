"""`meterflow bench gateway`: gateway throughput (outbox -> batched QoS 1 -> commit ack) vs one frame per message.

A stand-in decoder in the same process acknowledges each batch as soon as it arrives (what the decoder
does after its commit), so the figure includes the end-to-end acknowledgement round trip."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click


def _bench_frames(n: int) -> list[bytes]:
    """n distinct, well-formed wM-Bus frames: C M A(id, version, type) CI, then a counter and padding."""
    frames = []
    for i in range(n):
        body = bytes.fromhex("442D2C") + (10_000_000 + i).to_bytes(4, "little") + bytes.fromhex("1B167A")
        body += i.to_bytes(4, "little") + bytes(24)
        frames.append(bytes([len(body)]) + body)
    return frames


@click.command("gateway", epilog="Example: meterflow bench gateway --frames 200000 --mqtt-url mqtt://127.0.0.1:1883")
@click.option("--frames", "n_frames", default=200_000, show_default=True, help="Frames to push through.")
@click.option("--mqtt-url", default=None, help="Broker (default: settings mqtt.url, else mqtt://127.0.0.1:1883).")
@click.option("--batch", "batch_max_frames", default=1000, show_default=True, help="Frames per MQTT message.")
@click.option("--baseline-messages", default=20_000, show_default=True,
              help="Single-frame QoS 1 messages for the in-run baseline.")
@click.pass_context
def bench_gateway(ctx: click.Context, n_frames: int, mqtt_url: str | None, batch_max_frames: int,
                  baseline_messages: int) -> None:
    """Gateway throughput (outbox -> batched QoS 1 -> commit ack), as a ratio to one frame per message."""
    import re
    import threading

    from ingest.config import GatewayConfig
    from ingest.frames import ReceivedFrame
    from ingest.gateway import Gateway
    from ingest.outbox import Outbox
    from meterflow.mqtt import MqttSettings, make_client, speaks_v5

    settings = ctx.find_root().obj
    url = mqtt_url or (getattr(getattr(settings, "mqtt", None), "url", None)) or "mqtt://127.0.0.1:1883"
    raw = _bench_frames(n_frames)
    now = time.time()
    frames = [ReceivedFrame(d, now + i * 1e-4, -70) for i, d in enumerate(raw)]

    with tempfile.TemporaryDirectory() as tmp:
        # 1. the outbox alone
        ob = Outbox(Path(tmp) / "insert.sqlite3", max_frames=max(n_frames * 2, 1000))
        bodies = [f.wire() for f in frames]
        t0 = time.perf_counter()
        for i in range(0, n_frames, 5000):
            ob.put_many("wmbus", bodies[i:i + 5000])
        insert_fps = n_frames / (time.perf_counter() - t0)
        ob.close()

        # 2. baseline: one frame per message, QoS 1, paho directly
        mq = MqttSettings(url=url)
        v5 = speaks_v5(mq, f"bench-baseline-{int(now)}")
        client = make_client(mq, f"bench-baseline-{int(now)}", v5)
        client.max_inflight_messages_set(20)
        addr = mq.address()
        client.connect(addr.host, addr.port)
        client.loop_start()
        m = min(baseline_messages, n_frames)
        t0 = time.perf_counter()
        infos = [client.publish("meterflow/bench/baseline", bodies[i], qos=1) for i in range(m)]
        for info in infos:
            info.wait_for_publish(60)
        base_fps = m / (time.perf_counter() - t0)
        client.disconnect()
        client.loop_stop()

        # 3. the gateway: enqueue (dedup + outbox) and drain (batched publish until every commit ack)
        gw_id = f"bench-{int(now)}"
        acker = make_client(mq, f"bench-acker-{int(now)}", v5)
        subscribed = threading.Event()
        batch_id = re.compile(rb'"batch":"([^"]+)"')

        def ack(c: object, userdata: object, msg: object) -> None:
            found = batch_id.search(msg.payload)  # type: ignore[attr-defined]
            if found:
                body = b'{"batches":["' + found.group(1) + b'"]}'
                acker.publish(f"meterflow/bench/{gw_id}/ack", body, qos=1)

        acker.on_message = ack
        acker.on_subscribe = lambda *args: subscribed.set()
        acker.connect(addr.host, addr.port)
        acker.subscribe(f"meterflow/bench/{gw_id}/wmbus", qos=1)
        acker.loop_start()
        subscribed.wait(10)
        cfg = GatewayConfig.model_validate({
            "gateway_id": gw_id, "mqtt": {"url": url, "topic_prefix": "meterflow/bench"},
            "outbox": {"path": str(Path(tmp) / "gw.sqlite3"), "max_frames": max(n_frames * 2, 1000)},
            "batch_max_frames": batch_max_frames, "batch_max_ms": 50, "dedup_window_s": 30})
        gw = Gateway(cfg)
        t0 = time.perf_counter()
        for i in range(0, n_frames, 5000):
            gw.publish_frames(frames[i:i + 5000])
        enq = time.perf_counter() - t0
        ok = gw.drain(300)
        total = time.perf_counter() - t0
        gw.close()
        acker.disconnect()
        acker.loop_stop()
    if not ok:
        raise click.ClickException("not every frame was acknowledged within 300 s")
    fps = n_frames / total
    click.echo(f"outbox insert: {insert_fps:,.0f} frames/s; enqueue {n_frames / enq:,.0f} frames/s")
    click.echo(f"baseline (1 frame/message, QoS 1): {base_fps:,.0f} frames/s")
    click.echo(f"gateway: {n_frames} frames in {total:.2f} s = {fps:,.0f} frames/s "
               f"({fps / base_fps:.1f}x baseline, batch {batch_max_frames})")
