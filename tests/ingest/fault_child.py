"""A gateway process for the fault test: enqueues frames in chunks, records how far it got (after each
chunk is committed to the outbox), resumes from there when restarted, then drains and exits."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ingest.frames import ReceivedFrame
from ingest.gateway import Gateway, GatewayConfig

T0 = 1_700_000_000.0


def main(config_path: str, frames_path: str, progress_path: str, chunk: int, pause: float) -> int:
    cfg = GatewayConfig.model_validate_json(Path(config_path).read_text())
    frames = [bytes.fromhex(line) for line in Path(frames_path).read_text().split()]
    progress = Path(progress_path)
    start = int(progress.read_text()) if progress.exists() else 0
    gw = Gateway(cfg)
    for i in range(start, len(frames), chunk):
        gw.publish_frames(ReceivedFrame(d, T0 + (i + j) * 0.5, -70) for j, d in enumerate(frames[i:i + chunk]))
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(str(min(i + chunk, len(frames))))
        os.replace(tmp, progress)
        time.sleep(pause)
    ok = gw.drain(60)
    gw.close()
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
