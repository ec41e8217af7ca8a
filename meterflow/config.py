"""One typed settings object, from environment variables (METERFLOW_*) and an optional TOML file.

Precedence: explicit init values > environment > TOML file > defaults.
Nested sections use `__` in environment names, e.g. METERFLOW_VEE__STUCK_DAYS=30.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from analytics.interruptions.config import InterruptionConfig
from analytics.leaks.config import LeakConfig
from analytics.vee.config import VeeConfig
from meterflow.mqtt import MqttSettings
from meterflow.plausibility import PlausibilitySettings
from notify.config import NotifyConfig

DEFAULT_TOML = Path("meterflow.toml")


class DecoderServiceSettings(BaseModel):
    """Tuning of `meterflow decoder`."""

    shared_group: str = "decoders"
    session_expiry_s: int = Field(default=120, ge=0, description="broker keeps a vanished decoder's queue this long; "
                                  "then its share goes to the living (gateways resend what was not acked)")
    batch_max_frames: int = 5000
    batch_max_ms: int = 200
    metrics_port: int = 9464
    metrics_log_seconds: int = 60


class ApiSettings(BaseModel):
    """`meterflow serve`: the web app, billing API and dashboards."""

    host: str = "127.0.0.1"
    port: int = 8000
    tokens: list[SecretStr] = Field(default_factory=list, description="bearer tokens for analysts and billing")
    customer_link_secret: SecretStr = SecretStr("change-me")
    locale: Literal["pl", "en"] = Field(default="pl", description="language and number/date formats of the pages; "
                                                         "?lang=pl|en overrides it per page")


class StorageSettings(BaseModel):
    """How long raw frames stay in the database before `db maintain` moves them to compressed archive files."""

    raw_hot_days: int = Field(35, ge=1, description="days a raw frame stays in raw_frames (dedup of resends)")
    raw_archive_dir: Path | None = Field(None, description="archived raw frames; unset = <data_dir>/raw-archive")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="METERFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: SecretStr | None = Field(
        None, description="postgresql://user:pass@host:5432/db; unset = embedded PostgreSQL under data_dir"
    )
    timescale_url: SecretStr | None = Field(None, description="a TimescaleDB server for the timescale tests")
    mqtt: MqttSettings = MqttSettings(url=None)
    data_dir: Path = Path(".meterflow")
    log_format: str = "text"
    log_level: str = "INFO"
    timezone: str = "Europe/Warsaw"
    decoder: DecoderServiceSettings = DecoderServiceSettings()
    api: ApiSettings = ApiSettings()
    vee: VeeConfig = VeeConfig()
    leaks: LeakConfig = LeakConfig()
    notify: NotifyConfig = NotifyConfig()
    interruptions: InterruptionConfig = InterruptionConfig()
    plausibility: PlausibilitySettings = PlausibilitySettings()
    storage: StorageSettings = StorageSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("METERFLOW_CONFIG_FILE") or (str(DEFAULT_TOML) if DEFAULT_TOML.exists() else None)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @model_validator(mode="after")
    def _flat_mqtt_url(self) -> Settings:
        """METERFLOW_MQTT_URL is accepted as well as the nested METERFLOW_MQTT__URL."""
        if not self.mqtt.url and os.environ.get("METERFLOW_MQTT_URL"):
            self.mqtt.url = os.environ["METERFLOW_MQTT_URL"]
        return self

    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build settings; a config file given here wins over METERFLOW_CONFIG_FILE."""
    if config_file is not None:
        path = Path(config_file)
        if not path.exists():
            raise FileNotFoundError(f"settings file {path} does not exist (create it or drop --config-file)")
        os.environ["METERFLOW_CONFIG_FILE"] = str(path)
    return Settings(**overrides)


def mask_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def masked_dict(settings: Settings) -> dict[str, Any]:
    """Effective settings as plain data with every secret masked, for `config show`."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            return mask_url(secret) if "://" in secret else "***"
        if isinstance(value, BaseModel):
            return {k: walk(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, str) and "://" in value:
            return mask_url(value)
        return value

    return dict(walk(settings))
