"""One typed settings object, from environment variables (METERFLOW_*) and an optional TOML file.

Precedence: explicit init values > environment > TOML file > defaults.
Nested sections use `__` in environment names, e.g. METERFLOW_VEE__STUCK_DAYS=30.
"""

from __future__ import annotations

import os
import re
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
    tokens: list[SecretStr] = Field(
        default_factory=list,
        description="bootstrap bearer tokens with every scope (prefer named tokens: `meterflow tokens add`)")
    customer_link_secret: SecretStr | None = Field(
        default=None,
        description="signs customer links; unset = generated once and kept in data_dir/link-secret (0600)")
    customer_link_days: int = Field(default=90, ge=1, le=3650, description="how long a customer link stays valid")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="how long a login session lasts")
    login_max_failures: int = Field(default=10, ge=1,
                                    description="failed logins per client address and window before 429")
    login_window_s: int = Field(default=300, ge=1, description="the window of login_max_failures")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="larger request bodies are refused (413)")
    as_of_for_customers: bool = Field(
        default=False, description="let customer pages take ?now= (demos on simulated data only; analysts always may)")
    locale: Literal["pl", "en"] = Field(default="pl", description="language and number/date formats of the pages; "
                                                         "?lang=pl|en overrides it per page")


class SecretsSettings(BaseModel):
    """The master key that seals meters' AES keys at rest (AES-GCM)."""

    master_key: SecretStr | None = Field(
        default=None,
        description="base64 of 32 random bytes (meterflow keys master-key); unset = the key in master_key_file")
    master_key_file: Path = Field(
        default=Path("~/.config/meterflow/master-key"),
        description="used when master_key is unset: created once (0600) with a random key, then kept")
    previous_master_keys: list[SecretStr] = Field(
        default_factory=list, description="older master keys still accepted for reading (rotation)")


class StorageSettings(BaseModel):
    """How long raw frames stay in the database before `db maintain` moves them to compressed archive files,
    and how long a closed month's readings stay hot before they are packed."""

    raw_hot_days: int = Field(default=35, ge=1, description="days a raw frame stays in raw_frames (dedup of resends)")
    raw_archive_dir: Path | None = Field(default=None,
                                         description="archived raw frames; unset = <data_dir>/raw-archive")
    pack_after_days: int = Field(default=35, ge=1,
                                 description="days after a month ends before `db maintain` packs its readings"
                                             " (plain PostgreSQL)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="METERFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,  # a refused value may hold a password: errors name the field, not the value
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
    secrets: SecretsSettings = SecretsSettings()
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


SECRET_PARAMS = re.compile(
    r"(?i)((?:^|[?&;\s])(?:password|passwd|pwd|pass|secret|token|sslpassword|api_key|apikey|access_token)=)[^&;\s]*")


def mask_url(url: str) -> str:
    """Every password form masked: postgresql://user:secret@host/db -> user:***@, ?password=x -> ?password=***,
    and libpq key=value strings (password=x host=db)."""
    masked = SECRET_PARAMS.sub(r"\1***", url)
    try:
        parts = urlsplit(masked)
        password = parts.password
    except ValueError:
        return masked
    if password is None:
        return masked
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
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
        if isinstance(value, str) and ("://" in value or "=" in value):
            return mask_url(value)
        return value

    return dict(walk(settings))
