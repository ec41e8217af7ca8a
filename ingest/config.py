"""The gateway's typed configuration, loaded from its own TOML file (see ingest/gateway.example.toml).

Validated once at start; `masked()` is what may be logged or printed (the broker password never is).
The password can also come from METERFLOW_GATEWAY_MQTT_PASSWORD or a file, so the TOML can be public.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from meterflow.mqtt import MqttSettings

PASSWORD_ENV = "METERFLOW_GATEWAY_MQTT_PASSWORD"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(MqttSettings):
    """Broker connection of a gateway (the kernel's MQTT settings plus the gateway's delivery knobs).
    mqtts:// (or ca_file) turns TLS on."""

    model_config = ConfigDict(extra="forbid")
    password_env: ClassVar[str | None] = PASSWORD_ENV

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str | None = Field(default=None, description="default: meterflow-gw-<gateway_id>")
    max_inflight: int = Field(default=64, ge=1, le=10000,
                              description="batches sent and not yet confirmed (committed, or PUBACKed) at once")
    delivery: Literal["commit", "broker"] = Field(
        default="commit", description="commit: a frame leaves the outbox when a decoder acknowledges its "
        "commit (<prefix>/<gw>/ack); broker: on the broker's PUBACK (consumers without acks)")
    ack_timeout_s: float = Field(default=60.0, gt=0, description="resend a batch not confirmed within this")
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    @field_validator("url")
    @classmethod
    def _need_url(cls, value: str | None) -> str:
        if not value:
            raise ValueError("mqtt url must look like mqtt://host:1883 or mqtts://host:8883")
        return value

    @property
    def host(self) -> str:
        return self.address().host

    @property
    def port(self) -> int:
        return self.address().port

    @property
    def tls(self) -> bool:
        return self.address().tls


class OutboxConfig(_Strict):
    path: Path | None = Field(default=None, description="default: .meterflow/gateway/<gateway_id>.outbox.sqlite3")
    max_frames: int = Field(default=2_000_000, ge=1000, description="when full, the oldest frames are dropped")
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"


class ImstSource(_Strict):
    """IMST iM871A USB stick (HCI protocol)."""

    type: Literal["imst"]
    name: str = "im871a"
    port: str = Field(default="/dev/ttyUSB0", description="device path or pyserial URL (socket://host:port)")
    baudrate: int = 57600
    link_mode: Literal["S1", "T1", "C1", "C1+T1"] = "C1+T1"
    configure: bool = Field(default=True, description="send the link mode at start (off for read-only feeds)")


class AmberSource(_Strict):
    """Amber / Wurth AMB8465 USB stick (command mode, RSSI appended)."""

    type: Literal["amber"]
    name: str = "amb8465"
    port: str = "/dev/ttyUSB0"
    baudrate: int = 9600
    link_mode: Literal["S1", "T1", "C1", "C1+T1"] = "C1+T1"
    configure: bool = True
    rssi_appended: bool = Field(default=True, description="the stick's RSSI_Enable user setting is on")


class RawHexSource(_Strict):
    """Hex lines, one frame per line (rtl_wmbus style or plain hex) from serial, TCP or stdin."""

    type: Literal["rawhex"]
    name: str = "rawhex"
    port: str = Field(default="-", description="'-' for stdin, a device path, or a pyserial URL (socket://h:p)")
    baudrate: int = 115200


SourceConfig = Annotated[ImstSource | AmberSource | RawHexSource, Field(discriminator="type")]


class ModbusMeterConfig(_Strict):
    meter_id: str
    profile: str
    unit: int = Field(default=1, ge=0, le=247, description="Modbus device (slave) address")
    interval_s: float = Field(default=60.0, gt=0)


class ModbusBusConfig(_Strict):
    """One RS-485 line (rtu) or one TCP endpoint, and the meters polled on it."""

    name: str = "modbus"
    transport: Literal["rtu", "tcp"] = "rtu"
    port: str = "/dev/ttyUSB1"  # rtu: serial device
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8
    host: str = "127.0.0.1"  # tcp
    tcp_port: int = 502
    timeout_s: float = 1.0
    meters: list[ModbusMeterConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_profiles(self) -> ModbusBusConfig:
        from decoders.modbus.profiles import PROFILES

        for meter in self.meters:
            if meter.profile not in PROFILES:
                raise ValueError(f"meter {meter.meter_id}: unknown profile {meter.profile!r} "
                                 f"(known: {', '.join(sorted(PROFILES))})")
        return self


class GatewayConfig(_Strict):
    """Everything one gateway box needs; one TOML file per box."""

    gateway_id: str = Field(..., description="letters, digits, - and _; becomes a topic level")
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    batch_max_frames: int = Field(default=500, ge=1, le=20000)
    batch_max_ms: int = Field(default=200, ge=0)
    dedup_window_s: float = Field(default=30.0, ge=0, description="0 disables duplicate suppression")
    status_interval_s: float = Field(default=60.0, gt=0)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus /metrics port; 0 = off")
    metrics_addr: str = "127.0.0.1"
    sources: list[SourceConfig] = Field(default_factory=list)
    modbus: list[ModbusBusConfig] = Field(default_factory=list)

    @field_validator("gateway_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ValueError("gateway_id: 1-64 letters, digits, '-' or '_' (it is an MQTT topic level)")
        return value

    def outbox_path(self) -> Path:
        """Where the outbox lives; a box sets an absolute path, the demo and tests get a local default."""
        return self.outbox.path or Path(".meterflow") / "gateway" / f"{self.gateway_id}.outbox.sqlite3"

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> GatewayConfig:
        with open(path, "rb") as fh:
            return cls.model_validate(tomllib.load(fh))

    def masked(self) -> dict[str, Any]:
        """The configuration as JSON-able data with the password replaced, for logs and --check."""
        data = self.model_dump(mode="json")
        if self.mqtt.password is not None:
            data["mqtt"]["password"] = "***"
        return data
