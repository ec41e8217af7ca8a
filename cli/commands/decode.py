"""`meterflow decode`: frames, one per line, -> JSON readings."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any, TextIO

import click


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


@click.command(epilog="Example: meterflow decode --keys keys.csv telegrams.txt   "
                      "(or: echo 2E44...|meterflow decode)")
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False),
              help="CSV of meter_id,key_hex (AES-128 keys).")
@click.argument("input_file", required=False, type=click.File("r"))
def decode(keys_file: str | None, input_file: TextIO | None) -> None:
    """Decode wM-Bus frames, one per line (hex, `<time> <rssi> <hex>` as `fleet simulate` writes, rtl_wmbus or
    wmbusmeters lines), to one JSON object per line."""
    from decoders.reading import DecodeError
    from decoders.wmbus import WmbusDecoder
    from ingest.frame_lines import BadLine, parse_frame_line

    settings = click.get_current_context().find_root().obj  # the group's Settings (None when called alone)
    dec = WmbusDecoder(keys=_load_keys(keys_file), plausibility=getattr(settings, "plausibility", None))
    out = sys.stdout
    for line in input_file or sys.stdin:
        if not line.strip():
            continue
        parsed = parse_frame_line(line)
        result: Any
        if parsed is None:  # a # comment
            continue
        if isinstance(parsed, BadLine):
            result = DecodeError(parsed.reason, f"not a frame: {line.strip()[:40]!r}")
        else:
            result = dec.decode(parsed.data)
        out.write(json.dumps(result.to_json(), default=str) + "\n")
    out.flush()
