"""One frame-file format: what `meterflow fleet simulate` writes, `meterflow decode` and the gateway's rawhex
source read (ingest/frame_lines.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from ingest.dongles.rawhex import RawHexDecoder
from ingest.frame_lines import BadLine, FrameLine, format_frame_line, parse_frame_line
from ingest.frames import ReceivedFrame

FRAME = bytes.fromhex("0E4401063412785601077A2A000000")


def test_every_line_format() -> None:
    assert parse_frame_line(FRAME.hex()) == FrameLine(FRAME)
    assert parse_frame_line("0x" + " ".join(f"{b:02X}" for b in FRAME)) == FrameLine(FRAME)  # a spaced hex dump
    assert parse_frame_line(f"1780272000.125 -71 {FRAME.hex().upper()}") == FrameLine(FRAME, 1780272000.125, -71)
    assert parse_frame_line(f"1780272000 -71 {FRAME.hex()} trailing words") == FrameLine(FRAME, 1780272000.0, -71)
    assert parse_frame_line(f"T1;1;1;2019-04-03 19:00:42.000;-97;148;88888888;0x{FRAME.hex()}") == FrameLine(
        FRAME, None, -97)
    assert parse_frame_line(f"(wmbus) telegram=|{FRAME.hex()}| rssi=-70 dBm") == FrameLine(FRAME)
    assert parse_frame_line(f"{FRAME.hex()} not-hex words after") == FrameLine(FRAME)
    assert parse_frame_line("   ") is None and parse_frame_line("# a comment") is None
    assert parse_frame_line("zz not hex") == BadLine("not_hex", "zz not hex")
    assert parse_frame_line("0E440") == BadLine("not_hex", "0E440")  # odd number of digits
    assert parse_frame_line(f"C1;0;1;2019-04-03;97;148;1;0x{FRAME.hex()}") == BadLine(
        "bad_crc", "receiver reports a CRC error")


def test_format_then_parse_gives_the_frame_back() -> None:
    line = format_frame_line(FRAME, 1780272000.1254, -64)
    assert line == f"1780272000.125 -64 {FRAME.hex().upper()}"
    assert parse_frame_line(line) == FrameLine(FRAME, 1780272000.125, -64)


def test_fleet_frames_decode_and_feed_the_gateway(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["fleet", "simulate", "--meters", "6", "--days", "1", "--seed", "4",
                               "--out", str(tmp_path)])
    assert made.exit_code == 0, made.output
    frames_txt = tmp_path / "frames.txt"
    lines = frames_txt.read_text().splitlines()
    emitted = json.loads((tmp_path / "truth" / "counts.json").read_text())["frames_emitted"]
    assert len(lines) == emitted > 0

    decoded = runner.invoke(cli, ["decode", "--keys", str(tmp_path / "keys.csv"), str(frames_txt)])
    assert decoded.exit_code == 0, decoded.output
    out = [json.loads(line) for line in decoded.output.splitlines()]
    assert len(out) == emitted
    assert [o for o in out if "error" in o] == []
    meters = set((tmp_path / "keys.csv").read_text().split()[1:])
    assert {o["id"] for o in out} == {m.split(",")[0] for m in meters}

    events = RawHexDecoder().feed(frames_txt.read_bytes(), now=0.0)
    assert len(events) == emitted and all(isinstance(e, ReceivedFrame) for e in events)
    first_time, first_rssi, first_hex = lines[0].split()
    first = events[0]
    assert isinstance(first, ReceivedFrame)
    assert (first.received_at, first.rssi, first.data.hex().upper()) == (float(first_time), int(first_rssi), first_hex)
