"""Transport layer headers: none (78/79), short (7A/7B), long (72/73), and their security config."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

NO_HEADER = frozenset({0x78, 0x79})
SHORT_HEADER = frozenset({0x7A, 0x7B})
LONG_HEADER = frozenset({0x72, 0x73})
COMPACT = frozenset({0x73, 0x79, 0x7B})
TPL_CIS = NO_HEADER | SHORT_HEADER | LONG_HEADER


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us more per frame to build
class TplHeader:
    ci: int
    acc: int
    sts: int
    cfg: int
    cfg_ext: int | None
    id_bytes: bytes | None  # long header only
    m_field: bytes | None
    version: int | None
    device_type: int | None
    end: int  # index of the first byte after the header

    @property
    def mode(self) -> int:
        return (self.cfg >> 8) & 0x1F

    @property
    def n_blocks(self) -> int:
        return (self.cfg >> 4) & 0x0F

    @property
    def compact(self) -> bool:
        return self.ci in COMPACT


def parse_tpl(frame: bytes, pos: int) -> TplHeader | None:
    """Header at frame[pos] (the CI); None when the frame is too short."""
    ci = frame[pos]
    if ci in NO_HEADER:
        return TplHeader(ci, 0, 0, 0, None, None, None, None, None, pos + 1)
    if ci in SHORT_HEADER:
        if pos + 5 > len(frame):
            return None
        acc, sts = frame[pos + 1], frame[pos + 2]
        cfg = frame[pos + 3] | (frame[pos + 4] << 8)
        end = pos + 5
        ids = m = None
        ver = dtype = None
    else:
        if pos + 13 > len(frame):
            return None
        ids = bytes(frame[pos + 1 : pos + 5])
        m = bytes(frame[pos + 5 : pos + 7])
        ver, dtype = frame[pos + 7], frame[pos + 8]
        acc, sts = frame[pos + 9], frame[pos + 10]
        cfg = frame[pos + 11] | (frame[pos + 12] << 8)
        end = pos + 13
    cfg_ext = None
    if (cfg >> 8) & 0x1F == 7:
        if end >= len(frame):
            return None
        cfg_ext = frame[end]
        end += 1
    return TplHeader(ci, acc, sts, cfg, cfg_ext, ids, m, ver, dtype, end)


@cache
def status_words(sts: int) -> tuple[str, tuple[str, ...]]:
    """TPL status byte -> (status text, alarm words); 256 possible answers, each computed once."""
    flags: list[str] = []
    alarms: list[str] = []
    app = sts & 0x03
    if app == 1:
        flags.append("BUSY")
    elif app == 2:
        flags.append("APPLICATION_ERROR")
    elif app == 3:
        flags.append("ABNORMAL_CONDITION")
        alarms.append("alarm")
    if sts & 0x04:
        flags.append("POWER_LOW")
        alarms.append("low_battery")
    if sts & 0x08:
        flags.append("PERMANENT_ERROR")
        alarms.append("permanent_error")
    if sts & 0x10:
        flags.append("TEMPORARY_ERROR")
        alarms.append("temporary_error")
    return (" ".join(flags) or "OK"), tuple(alarms)
