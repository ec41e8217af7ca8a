"""`meterflow eval interruptions` on the real DAIAD homes: the figures the README quotes, and the baseline."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli


def test_real_homes_meet_the_targets_and_beat_the_plain_rule(shared_dir: Path) -> None:
    data = shared_dir / "data" / "daiad" / "swm_trialA_public.csv.gz"
    res = CliRunner().invoke(cli, ["eval", "interruptions", "--daiad", str(data), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    det, plain = out["detector"], out["plain_rule"]
    assert (out["homes"], out["repeat"], len(out["runs"])) == (51, 3, 3)
    assert det["interruptions"] == plain["interruptions"] >= 90 and det["street_events"] >= 30
    assert det["recall"] >= 0.9 and det["street_found"] >= 0.75 * det["street_events"]
    assert det["false_per_district_year"] <= 1.0
    assert det["comm_as_supply"] == 0 and det["comm_found"] == det["comm_events"]
    assert plain["street_found"] == 0 and plain["recall"] < det["recall"]
