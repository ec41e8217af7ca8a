"""The one MQTT layer: one settings model, one URL parser, one client set-up, one MQTT 5 check.

Used by the gateway's publisher and the decoder service alike, so both honour the same credentials,
TLS files (CA, client certificate and key, `tls_insecure`) and protocol choice.
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

if TYPE_CHECKING:  # paho is imported where a client is made: settings alone stay free of it
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties

SCHEMES = ("mqtt", "mqtts", "tcp", "ssl")
TLS_SCHEMES = ("mqtts", "ssl")
#: CONNACK codes of a broker that does not speak MQTT 5 (MQTT 5 reason 0x84, MQTT 3.1.1 return code 1)
UNSUPPORTED_PROTOCOL = (0x84, 1)
#: PUBACK reason 0x10 "no matching subscribers": accepted, but nobody will ever receive it
NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_url(url: str) -> BrokerAddress:
    """mqtt://host[:1883] or mqtts://host[:8883] (tcp:// and ssl:// too)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError(f"broker URL must look like mqtt://host:1883 or mqtts://host:8883, not {url!r}")
    tls = parts.scheme in TLS_SCHEMES
    return BrokerAddress(parts.hostname, parts.port or (8883 if tls else 1883), tls)


class MqttSettings(BaseModel):
    """A broker connection: where, who, TLS, and which protocol."""

    #: environment variable that, when set, overrides the password (so a TOML file can be public)
    password_env: ClassVar[str | None] = None

    url: str | None = Field(None, description="mqtt://host:1883 or mqtts://host:8883; unset = in-process broker")
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(default=None, description="file holding the password (first line)")
    ca_file: Path | None = None
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = None
    tls_insecure: bool = Field(default=False, description="skip host name check (test brokers only)")
    topic_prefix: str = "meterflow/v1"
    client_id_prefix: str = "meterflow"
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive_s: int = Field(default=30, ge=5)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parse_url(value)
        if urlsplit(value).password:
            raise ValueError("put the password in mqtt.password / password_file, not in the url")
        return value

    def address(self) -> BrokerAddress:
        if not self.url:
            raise ValueError("no MQTT broker configured: set METERFLOW_MQTT__URL (e.g. mqtt://127.0.0.1:1883)")
        addr = parse_url(self.url)
        if self.ca_file is not None and not addr.tls:
            return BrokerAddress(addr.host, addr.port, True)
        return addr

    def password_value(self) -> str | None:
        """The password from (in order) the environment variable, password_file, or the settings."""
        env = os.environ.get(self.password_env) if self.password_env else None
        if env:
            return env
        if self.password_file is not None:
            return self.password_file.read_text().splitlines()[0].strip()
        return self.password.get_secret_value() if self.password else None


def make_client(cfg: MqttSettings, client_id: str, v5: bool, *, persistent: bool = False) -> mqtt.Client:
    """A paho client with the settings' credentials and TLS. `persistent`: MQTT 3.1.1 clean session off
    (for MQTT 5, pass clean_start/session expiry to `connect`)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    if v5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=not persistent)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password_value())
    if cfg.address().tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                       certfile=str(cfg.cert_file) if cfg.cert_file else None,
                       keyfile=str(cfg.key_file) if cfg.key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED)
        if cfg.tls_insecure:
            client.tls_insecure_set(True)
    client.max_queued_messages_set(0)
    return client


def connect_properties(session_expiry: int | None = None, receive_maximum: int | None = None) -> Properties:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry is not None:
        props.SessionExpiryInterval = session_expiry
    if receive_maximum is not None:
        props.ReceiveMaximum = max(1, min(65535, receive_maximum))
    return props


def end_session_properties() -> Properties:
    """DISCONNECT properties that end an MQTT 5 session at the broker (session expiry 0)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    return props


def speaks_v5(cfg: MqttSettings, client_id: str, timeout: float = 5.0) -> bool:
    """Does the broker speak MQTT 5? A real MQTT 5 CONNECT with the settings' credentials and TLS.

    True on any CONNACK but "unsupported protocol version" (a v5 broker refusing a password still speaks
    v5); False on that refusal or when a 3.1.1-only broker stays silent or hangs up. Raises OSError when
    the broker cannot be reached at all (the caller retries: the answer is unknown)."""
    if cfg.protocol != "auto":
        return cfg.protocol == "5"
    addr = cfg.address()
    client = make_client(cfg, f"{client_id}-probe", True)
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        answer["code"] = getattr(reason, "value", reason)
        done.set()

    def on_disconnect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect(addr.host, addr.port, keepalive=10, clean_start=True)
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        if "code" in answer:
            client.disconnect()
        client.loop_stop()
    code = answer.get("code")
    return code is not None and code not in UNSUPPORTED_PROTOCOL
