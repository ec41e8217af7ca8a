"""`meterflow decode`: frames, one per line, -> JSON readings."""

from __future__ import annotations

import csv
import json
import re
import sys
from typing import Any, TextIO

import click

_TELEGRAM = re.compile(r"telegram=\|?([0-9A-Fa-f_|]+)\|?")


def _load_keys(path: str | None) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    if not path:
        return keys
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if len(row) < 2 or row[0].strip().startswith("#") or row[0].strip() == "meter_id":
                continue
            try:
                keys[row[0].strip()] = bytes.fromhex(row[1].strip())
            except ValueError:
                continue
    return keys


def _frame_of(line: str) -> bytes | None:
    """A hex frame or `telegram=|HEX|`; tokens after the frame are ignored."""
    match = _TELEGRAM.search(line)
    token = match.group(1) if match else line.split()[0]
    token = token.replace("_", "").replace("|", "")
    try:
        return bytes.fromhex(token) if token else None
    except ValueError:
        return None


@click.command(epilog="Example: meterflow decode --keys keys.csv telegrams.txt   "
                      "(or: echo 2E44...|meterflow decode)")
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False),
              help="CSV of meter_id,key_hex (AES-128 keys).")
@click.argument("input_file", required=False, type=click.File("r"))
def decode(keys_file: str | None, input_file: TextIO | None) -> None:
    """Decode wM-Bus frames, one per line, to one JSON object per line."""
    from decoders.reading import DecodeError
    from decoders.wmbus import WmbusDecoder

    dec = WmbusDecoder(keys=_load_keys(keys_file))
    out = sys.stdout
    for line in input_file or sys.stdin:
        if not line.strip():
            continue
        frame = _frame_of(line.strip())
        result: Any
        if frame is None:
            result = DecodeError("not_hex", f"not a hex frame: {line.strip()[:40]!r}")
        else:
            result = dec.decode(frame)
        out.write(json.dumps(result.to_json(), default=str) + "\n")
    out.flush()
