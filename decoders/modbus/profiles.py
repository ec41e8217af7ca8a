"""Register profiles of Modbus water and flow meters: one page of data per model, test vectors beside it.

A profile says which registers the gateway reads (blocks: function, address, count), how each value is
encoded (type, word order, scale, unit) and which registers make the billing total. Addresses are the
0-based protocol addresses (a manual's "register 40001" or "0001" is address 0). Register maps are as
published in the makers' manuals; check the firmware of your unit, and the totalizer unit and multiplier
noted per profile, before billing from it.

Adding a meter = adding a Profile with two vectors (tests/ingest/test_ingest_modbus.py walks them) and the
register contents it must refuse (tests/decoders/test_plausible.py walks those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RegType = Literal["u16", "i16", "u32", "i32", "f32"]
WordOrder = Literal["big", "little"]  # big: high word first (ABCD); little: low word first (CDAB)
WIDTH: dict[str, int] = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "f32": 2}
# an integer billing register at its maximum is saturated or unset (all ones), never a meter index
SATURATED: dict[str, int] = {"u16": 0xFFFF, "i16": 0x7FFF, "u32": 0xFFFF_FFFF, "i32": 0x7FFF_FFFF}


@dataclass(frozen=True, slots=True)
class Register:
    name: str  # the Reading field it becomes, unit in the name (flow_m3h, velocity_m_s, ...)
    address: int
    type: RegType
    word_order: WordOrder = "big"
    scale: float = 1.0
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Block:
    """One read request the gateway sends per poll: function 3 (holding) or 4 (input registers)."""

    function: Literal[3, 4]
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class AlarmBit:
    register: str  # a u16 register name
    mask: int  # alarm when register & mask != 0
    alarm: str  # word for Reading.alarms (dry, fault, high_flow, ...)


@dataclass(frozen=True, slots=True)
class Vector:
    """Register words as the meter returns them, and what they must decode to."""

    address: int
    words: tuple[int, ...]
    total_m3: float
    flow_m3h: float | None = None
    alarms: tuple[str, ...] = ()
    fields: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Refused:
    """Register words that must not become a reading, and the refusal code they give."""

    address: int
    words: tuple[int, ...]
    code: str


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    manufacturer: str  # three letters, as Reading.manufacturer
    model: str
    device_type: str
    blocks: tuple[Block, ...]
    registers: tuple[Register, ...]
    total: tuple[str, ...]  # registers summed into the billing total (m3), e.g. integer + fraction
    flow: str | None
    alarm_bits: tuple[AlarmBit, ...] = ()
    notes: str = ""
    register_digits: int | None = None  # whole m3 digits the billing register holds, when the model says
    vectors: tuple[Vector, ...] = ()
    refused: tuple[Refused, ...] = ()

    def register(self, name: str) -> Register:
        return next(r for r in self.registers if r.name == name)


TUF2000M = Profile(
    name="tuf2000m",
    manufacturer="TUF",
    model="TUF-2000M ultrasonic flow meter (clamp-on / insertion)",
    device_type="water",
    blocks=(Block(3, 0, 16),),
    registers=(
        Register("flow_m3h", 0, "f32", "little", unit="m3/h"),  # registers 0001-0002
        Register("energy_flow_gj_h", 2, "f32", "little", unit="GJ/h"),  # 0003-0004
        Register("velocity_m_s", 4, "f32", "little", unit="m/s"),  # 0005-0006
        Register("sound_speed_m_s", 6, "f32", "little", unit="m/s"),  # 0007-0008
        Register("forward_total_int", 8, "i32", "little", unit="m3"),  # 0009-0010 positive accumulator
        Register("forward_total_frac", 10, "f32", "little", unit="m3"),  # 0011-0012 its decimal fraction
        Register("reverse_total_int", 12, "i32", "little", unit="m3"),  # 0013-0014 negative accumulator
        Register("reverse_total_frac", 14, "f32", "little", unit="m3"),  # 0015-0016
    ),
    total=("forward_total_int", "forward_total_frac"),
    flow="flow_m3h",
    notes="32-bit values low word first. Totals assume totalizer unit m3 (menu M31) and multiplier x1 (M32).",
    vectors=(
        Vector(0, (0x0000, 0x4148, 0x0000, 0x0000, 0x0000, 0x3FA0, 0x1000, 0x44B9,
                   0x04D2, 0x0000, 0x0000, 0x3F00, 0x0003, 0x0000, 0x0000, 0x3E80),
               total_m3=1234.5, flow_m3h=12.5,
               fields=(("velocity_m_s", 1.25), ("sound_speed_m_s", 1480.5), ("reverse_total_int", 3.0),
                       ("reverse_total_frac", 0.25))),
        Vector(0, (0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
                   0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000),
               total_m3=0.0, flow_m3h=0.0),
    ),
    refused=(
        Refused(0, (0,) * 8 + (0xFFFB, 0xFFFF) + (0,) * 6, "negative_index"),  # -5 m3
        Refused(0, (0,) * 8 + (0xFFFF, 0x7FFF) + (0,) * 6, "beyond_register"),  # i32 at its maximum
        Refused(0, (0,) * 10 + (0x0000, 0x7F80) + (0,) * 4, "not_finite"),  # fraction +Infinity
        Refused(0, (0,) * 10 + (0xFFFF, 0x7F7F) + (0,) * 4, "beyond_register"),  # fraction 3.4e38
    ),
)

LDG_MAG = Profile(
    name="ldg_mag",
    manufacturer="LDG",
    model="LDG-type electromagnetic flow converter (e.g. Sinomeasure SUP-LDG) Modbus RTU map",
    device_type="water",
    blocks=(Block(4, 0x1010, 22),),
    registers=(
        Register("flow_m3h", 0x1010, "f32", unit="m3/h"),
        Register("velocity_m_s", 0x1012, "f32", unit="m/s"),
        Register("flow_percent", 0x1014, "f32", unit="%"),
        Register("conductivity_ratio", 0x1016, "f32"),
        Register("forward_total_int", 0x1018, "u32", unit="m3"),
        Register("forward_total_frac", 0x101A, "f32", unit="m3"),
        Register("reverse_total_int", 0x101C, "u32", unit="m3"),
        Register("reverse_total_frac", 0x101E, "f32", unit="m3"),
        Register("flow_unit_code", 0x1020, "u16"),
        Register("total_unit_code", 0x1021, "u16"),
        Register("alarm_high", 0x1022, "u16"),
        Register("alarm_low", 0x1023, "u16"),
        Register("alarm_empty_pipe", 0x1024, "u16"),
        Register("alarm_system", 0x1025, "u16"),
    ),
    total=("forward_total_int", "forward_total_frac"),
    flow="flow_m3h",
    alarm_bits=(
        AlarmBit("alarm_high", 0xFFFF, "high_flow"),
        AlarmBit("alarm_low", 0xFFFF, "low_flow"),
        AlarmBit("alarm_empty_pipe", 0xFFFF, "dry"),
        AlarmBit("alarm_system", 0xFFFF, "fault"),
    ),
    notes="Input registers, 32-bit values high word first. Totals assume the totalizer unit is m3.",
    vectors=(
        Vector(0x1010, (0x4228, 0x0000, 0x3F40, 0x0000, 0x41A8, 0x0000, 0x42C8, 0x0000, 0x0001, 0x81CD,
                        0x3E00, 0x0000, 0x0000, 0x000C, 0x0000, 0x0000, 0x0001, 0x0001, 0x0000, 0x0000,
                        0x0001, 0x0000),
               total_m3=98765.125, flow_m3h=42.0, alarms=("dry",),
               fields=(("velocity_m_s", 0.75), ("flow_percent", 21.0), ("reverse_total_int", 12.0))),
        Vector(0x1010, (0x0000,) * 8 + (0x0000, 0x0010, 0x0000, 0x0000) + (0x0000,) * 4 + (1, 1, 0, 0, 0, 0),
               total_m3=16.0, flow_m3h=0.0),
    ),
    refused=(Refused(0x1010, (0,) * 8 + (0xFFFF, 0xFFFF) + (0,) * 12, "beyond_register"),),
)

PULSE_U32_LITRES = Profile(
    name="pulse_u32_litres",
    manufacturer="GEN",
    model="Generic Modbus pulse counter: litres as one 32-bit holding register pair at address 0",
    device_type="water",
    blocks=(Block(3, 0, 2),),
    registers=(Register("total_litres", 0, "u32", scale=0.001, unit="m3"),),
    total=("total_litres",),
    flow=None,
    notes="For a pulse-input module counting a water meter's reed contact in litres.",
    vectors=(
        Vector(0, (0x0012, 0xD687), total_m3=1234.567),
        Vector(0, (0x0001, 0x0000), total_m3=65.536),
    ),
    refused=(Refused(0, (0xFFFF, 0xFFFF), "beyond_register"),),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (TUF2000M, LDG_MAG, PULSE_U32_LITRES)}
