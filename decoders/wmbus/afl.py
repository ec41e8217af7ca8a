"""Authentication and fragmentation layer (CI 90): fragment control, message counter, MAC."""

from __future__ import annotations

from dataclasses import dataclass

# MCL authentication type -> MAC length in bytes (AES-CMAC truncations, GMAC)
MAC_LENGTHS: dict[int, int] = {0: 0, 3: 2, 4: 4, 5: 8, 6: 12, 7: 16, 8: 12}


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us more per frame to build
class AflHeader:
    fcl: int
    mcl: int | None
    ki: bytes | None
    mcr: bytes | None  # message counter, 4 bytes little endian as transmitted
    mac: bytes | None
    ml: bytes | None  # message length, 2 bytes

    @property
    def more_fragments(self) -> bool:
        return bool(self.fcl & 0x4000)

    @property
    def fragment_id(self) -> int:
        return self.fcl & 0xFF

    def mac_input_prefix(self) -> bytes:
        """MCL || MCR || ML: the AFL part covered by the MAC (the TPL and payload follow it)."""
        out = bytes([self.mcl]) if self.mcl is not None else b""
        return out + (self.mcr or b"") + (self.ml or b"")


class AflError(ValueError):
    pass


def parse_afl(frame: bytes, pos: int) -> tuple[AflHeader, int]:
    """AFL at frame[pos] (the CI 90) -> header and index after it. Raises AflError when malformed."""
    if pos + 4 > len(frame):
        raise AflError("AFL header truncated")
    afl_len = frame[pos + 1]
    end = pos + 2 + afl_len
    if end > len(frame) or afl_len < 2:
        raise AflError("AFL length beyond the frame")
    fcl = int.from_bytes(frame[pos + 2 : pos + 4], "little")
    p = pos + 4
    mcl = ki = mcr = mac = ml = None
    if fcl & 0x2000:  # MCL present
        mcl = frame[p]
        p += 1
    if fcl & 0x0200:  # KI present
        ki = bytes(frame[p : p + 2])
        p += 2
    if fcl & 0x0800:  # MCR present
        mcr = bytes(frame[p : p + 4])
        p += 4
    if fcl & 0x0400:  # MAC present
        at = (mcl or 0) & 0x0F
        n = MAC_LENGTHS.get(at)
        if n is None:
            raise AflError(f"unknown AFL authentication type {at}")
        mac = bytes(frame[p : p + n])
        p += n
    if fcl & 0x1000:  # ML present
        ml = bytes(frame[p : p + 2])
        p += 2
    if p > end:
        raise AflError("AFL fields exceed AFL length")
    return AflHeader(fcl, mcl, ki, mcr, mac, ml), end
