"""What a driver is: data (detection, field rules, test vectors) plus optional small special code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from decoders.reading import DecodeError


@dataclass(frozen=True, slots=True)
class Vector:
    """A test telegram for a driver and what it must decode to (values from the reference decoder)."""

    telegram_hex: str
    expected: Mapping[str, Any]
    key_hex: str | None = None
    preceding_hex: tuple[str, ...] = ()


@dataclass(slots=True)
class FrameView:
    """What special driver code sees: the normalised frame and where the application data starts."""

    frame: bytes
    m_field: bytes  # 2 bytes as transmitted
    address: bytes  # 6 bytes: id (4) version type, as used in IVs
    ci_pos: int  # index of the CI field in frame
    tpl_cfg: int
    key: bytes | None

    @property
    def ci(self) -> int:
        return self.frame[self.ci_pos]

    @property
    def payload(self) -> bytes:
        """Bytes after the CI field."""
        return self.frame[self.ci_pos + 1 :]


@dataclass(slots=True)
class SpecialResult:
    """Values that special driver code extracted from a manufacturer-specific payload."""

    total_m3: float | None = None
    target_m3: float | None = None
    target_date: date | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    alarms: tuple[str, ...] = ()
    status: str | None = None
    keyed: bool = False  # the payload was opened with the meter's configured key (view.key)


SpecialFn = Callable[[FrameView], SpecialResult | DecodeError | None]  # None: decode as standard
PostFn = Callable[[dict[str, Any]], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """One meter model. Detection entries are (manufacturer, version or None, device type or None)."""

    name: str
    detect: tuple[tuple[str, int | None, int | None], ...]
    target_storage: int = 1  # storage number that holds the value at the last billing date
    special: SpecialFn | None = None  # for manufacturer-specific payloads (CI A0-B7 or odd TPLs)
    special_cis: frozenset[int] = frozenset()  # CIs the special code handles (empty: none)
    alarms_from_fields: PostFn | None = None  # map driver-specific status records to alarm words
    mfct_data: Callable[[bytes], SpecialResult] | None = None  # parse data after DIF 0F
    known_formats: tuple[str, ...] = ()  # compact-frame formats (hex DIF/VIF bytes) known in advance
    record_hook: Callable[[list[Any]], SpecialResult | None] | None = None  # values hidden in records
    # the layout always carries the total (with mfct_data: in the manufacturer data, not in OMS records);
    # a frame without it is not this layout (garbage after a wrong key, or forged): missing_volume
    requires_total: bool = False
    hex_ids: bool = False  # the maker numbers meters in binary: ids are 8 hex digits, not BCD
    vectors: tuple[Vector, ...] = ()
