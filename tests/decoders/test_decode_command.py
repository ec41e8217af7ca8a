"""`meterflow decode`: one JSON line per non-blank input line, errors as codes, exit status 0."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.commands.decode import decode
from decoders.reading import ERROR_CODES
from decoders.wmbus.testing import mode5_frame, water_records

KEY = bytes(range(16))


def test_decode_lines_keys_and_errors(tmp_path: Path) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text(f"meter_id,key_hex\n12345678,{KEY.hex()}\n")
    frame = mode5_frame("12345678", KEY, water_records(4242, 4000)).hex().upper()
    text = "\n".join([
        f"telegram=|{frame}| rssi=-70 dBm",
        "",
        "zz not hex",
        "1844AE4C4455223368077A55000000041389E20100023B0000 trailing tokens",
        mode5_frame("87654321", KEY, water_records(1)).hex(),
    ]) + "\n"
    result = CliRunner().invoke(decode, ["--keys", str(keys)], input=text)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 4
    assert lines[0]["id"] == "12345678" and lines[0]["total_m3"] == 4.242 and lines[0]["target_m3"] == 4.0
    assert lines[1]["error"] == "not_hex"
    assert lines[2]["total_m3"] == 123.529
    assert lines[3]["error"] == "no_key" and lines[3]["id"] == "87654321"
    assert all(line["error"] in ERROR_CODES for line in lines if "error" in line)


def test_decode_has_an_example_epilog() -> None:
    assert decode.epilog and decode.epilog.startswith("Example:")
