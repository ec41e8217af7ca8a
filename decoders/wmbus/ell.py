"""Extended link layer (CI 8C-8F): communication control, access number, and AES-CTR session data."""

from __future__ import annotations

from dataclasses import dataclass

# length of each ELL variant including its CI byte (the payload CRC of 8D/8F is counted with the payload)
ELL_LENGTHS: dict[int, int] = {0x8C: 3, 0x8D: 7, 0x8E: 11, 0x8F: 15}


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us more per frame to build
class EllHeader:
    ci: int
    cc: int
    acc: int
    m_field: bytes | None  # 8E/8F carry the other party's address
    address: bytes | None
    sn: bytes | None  # session number (8D/8F): encryption mode in its top 3 bits

    @property
    def encryption(self) -> int:
        """0 none, 1 AES-128-CTR."""
        if self.sn is None:
            return 0
        return (int.from_bytes(self.sn, "little") >> 29) & 0x07


def parse_ell(frame: bytes, pos: int) -> tuple[EllHeader, int] | None:
    """The ELL at frame[pos] and the index after it; None if the frame is too short."""
    ci = frame[pos]
    end = pos + ELL_LENGTHS[ci]
    if end > len(frame):
        return None
    cc, acc = frame[pos + 1], frame[pos + 2]
    m_field = address = sn = None
    if ci in (0x8E, 0x8F):
        m_field, address = bytes(frame[pos + 3 : pos + 5]), bytes(frame[pos + 5 : pos + 11])
    if ci == 0x8D:
        sn = bytes(frame[pos + 3 : pos + 7])
    elif ci == 0x8F:
        sn = bytes(frame[pos + 11 : pos + 15])
    return EllHeader(ci, cc, acc, m_field, address, sn), end
