"""Water meters that follow OMS records closely: data-only drivers (detection, billing storage, vectors)."""

from __future__ import annotations

from decoders.wmbus.drivers.base import DriverSpec, Vector

DRIVERS = (
    DriverSpec(
        name="itron",
        detect=(("ITW", 0x03, 0x07), ("ITW", 0x00, 0x07), ("ITW", 0x33, 0x07), ("ITW", 0x16, 0x07)),
        vectors=(
            Vector("384497269856341203077AD90000A00413FD110000066D2C1AA1D521004413300F0000426CBF2C047F000006"
                   "0C027F862A0E79678372082100",
                   {"id": "12345698", "total_m3": 4.605, "target_m3": 3.888, "target_date": "2021-12-31"}),
        ),
    ),
    DriverSpec(
        name="iperl",
        detect=(("SEN", 0x68, 0x07), ("SEN", 0x7C, 0x07)),
        vectors=(
            Vector("1844AE4C4455223368077A55000000041389E20100023B0000", {"id": "33225544", "total_m3": 123.529}),
        ),
    ),
    DriverSpec(
        name="lse_07_17",
        detect=(("LSE", 0x18, 0x06), ("LSE", 0x18, 0x07), ("LSE", 0x17, 0x07), ("LSE", 0x16, 0x07),
                ("LSE", 0xD8, 0x07)),
        vectors=(
            Vector("2D44653223369909D8077A80000000046D130AED2B0C13233332004C1351762700426CDF2C326CFFFF02BB560000",
                   {"id": "09993623", "total_m3": 323.323}),
        ),
    ),
    DriverSpec(
        name="supercom587",
        detect=(("SON", 0x3C, 0x06), ("SON", 0x3C, 0x07)),
        vectors=(
            Vector("A244EE4D785634123C067A8F0000000C1348550000426CE1F14C130000000082046C21298C0413330000008D0"
                   "4931E3A3CFE3300000033000000330000003300000033000000330000003300000033000000330000003300000"
                   "033000000330000004300000034180000046D0D0B5C2B03FD6C5E150082206C5C290BFD0F0200018C407967888"
                   "5238310FD3100000082106C01018110FD610002FD66020002FD170000",
                   {"id": "12345678", "total_m3": 5.548}),
        ),
    ),
    DriverSpec(
        name="q400",
        detect=(("AXI", 0x10, 0x07), ("AXI", 0x01, 0x07)),
        vectors=(
            Vector("2E4409077272727210077AD71020052F2F046D040D742C041377000000446D0000612C4413000000002F2F2F"
                   "2F2F2F", {"id": "72727272", "total_m3": 0.119}),
        ),
    ),
    DriverSpec(
        name="hydrodigit",
        detect=(("BMT", 0x13, 0x07), ("BMT", 0x17, 0x06), ("BMT", 0x13, 0x06), ("BMT", 0x17, 0x07)),
        vectors=(
            Vector("2444B4090155240317068C00487AC00000000C1335670000046D172EEA280F030000000000",
                   {"id": "03245501", "total_m3": 6.735}),
        ),
    ),
    DriverSpec(
        name="waterstarm",
        detect=(("DWZ", 0x00, 0x06), ("DWZ", 0x02, 0x06), ("DWZ", 0x00, 0x07), ("DWZ", 0x02, 0x07),
                ("EFE", 0x70, 0x07)),
        vectors=(
            Vector("3944FA122162092002067A3600202567C94D48D00DC47B11213E23383DB51968A705AAFA60C60E263D50CD25"
                   "9D7C9A03FD0C08000002FD0B0011", {"id": "20096221", "total_m3": 0.106},
                   key_hex="BEDB81B52C29B5C143388CBB0D15A051"),
        ),
    ),
    DriverSpec(
        name="dme173",
        detect=(("DME", 0x63, 0x07),),
        target_storage=8,
        vectors=(
            Vector("5344A5113322332263078C0085900F002C256C1601004BB24778D6AC091E7ADF003107102F2F0C13838600000"
                   "4FD17000000000A5A550002FD74EE114C1300020000426C3F3C84046D3B375F318C041374460000",
                   {"id": "22332233", "total_m3": 8.683, "target_m3": 4.674}),
        ),
    ),
    DriverSpec(
        name="istawater",
        detect=(("IST", 0x31, 0x07), ("IST", 0x31, 0x06)),
        target_storage=2,
        vectors=(
            Vector("434474262957702231078C2095900F002C25D744B09E30930AFB644687F97AD7002007102F2F0C1369603200"
                   "82016C1E398C0113626032002F2F2F2F2F2F2F2F2F2F2F2F",
                   {"id": "22705729", "total_m3": 326.069, "target_m3": 326.062, "target_date": "2024-09-30"}),
        ),
    ),
    DriverSpec(
        name="minomess",
        detect=(("ZRI", 0x01, 0x06), ("ZRI", 0x01, 0x07)),
        target_storage=8,
        vectors=(
            Vector("6644496A8753155518377221314151496A0106300050052F2F0C1357000000026CEC2182046CE1218C04130"
                   "00000808D0493132C33FE000080000080000080000080000080000080000080000080000080000080000080"
                   "00008000008000008002FD1700002F2F",
                   {"id": "51413121", "total_m3": 0.057, "target_m3": 80000, "target_date": "2023-01-01"}),
        ),
    ),
    DriverSpec(
        name="uiws",
        detect=(("ZRI", 0x99, 0x07),),
        target_storage=30,
        vectors=(
            Vector("6E44496A6407336199077A361260252F2F046D22484136041301000000441300000080820F6C4136840F1301000000"
                   "8D0F93132E34FE0000000000000080000000800000008000000080000000800000008000000080000000800000"
                   "00800000008002FD1728000259340702656C07",
                   {"id": "61330764", "total_m3": 0.001, "target_m3": 0.001, "target_date": "2026-06-01"}),
        ),
    ),
    DriverSpec(
        name="evo868",
        detect=(("MAD", 0x50, 0x07), ("MAD", 0x50, 0x16)),
        vectors=(
            Vector("AC4424349418032150167A390000202F2F041356850000046D0A340B3C04FD17000000000E78685800000000441"
                   "3D0620000426CFF2C8401137A83000082016C1E3BD3013BCF0200C4016D09210E338104FD280182046C1E3B84"
                   "04137A830000C40413BE7E00008405131A7B0000C405136B7600008406132A700000C40613ED6A0000840713"
                   "0F690000C40713536800008408136E670000C40813EE65000084091330640000C40913D0620000",
                   {"id": "21031894", "total_m3": 34.134, "target_m3": 25.296, "target_date": "2023-12-31"}),
        ),
    ),
)
