"""Engelmann/Sensus FAW water meters: standard records, compact frames with a long header (CI 73)."""

from __future__ import annotations

from decoders.wmbus.drivers.base import DriverSpec, Vector

DRIVERS = (
    DriverSpec(
        name="engelmann_faw",
        detect=(("EFE", 0x00, 0x07), ("EFE", 0x00, 0x16), ("EFE", 0x00, 0x06)),
        # full-frame format (date, billing value, error flags, 16 history values, clock, total);
        # its CRC is the signature 0x052D that the compact frames carry
        known_formats=(
            "426C441301FD17840113C40113840213C40213840313C40313840413C40413840513C40513840613C40613"
            "840713C40713840813046D0413",
        ),
        vectors=(
            Vector("7644C5145528502202077320248622C5140007700060255F2AA2967EB77D0BF310341E3636D9ACC17CC5D6"
                   "9CE5632D7B494CC0718E2DBB916BBEC0C3FF2B0D6087FD0ABB3BA0779564CC089E4527987EF2221D26D7EA448"
                   "CA59759ACFBEA4E5B0026EF463592B6668FBF680896E78B461DBB77C32903E0",
                   {"id": "22862420", "total_m3": 253.409}, key_hex="5CDB04C8EDFDC09EC49B5E76A24D4822"),
        ),
    ),
)
