"""Settings from the environment (``OPSDESK_*``) and an optional TOML or YAML file.

Precedence, highest first: explicit arguments, environment, the config file
(``OPSDESK_CONFIG_FILE``), defaults.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSDESK_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    secret_key: SecretStr = SecretStr("")
    admin_email: str = "admin@localhost"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "opsdesk@localhost"
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0

    log_level: str = "INFO"
    # auto: plain text on a terminal, one JSON object per line otherwise (files, journald, collectors).
    log_format: Literal["auto", "json", "text"] = "auto"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    metrics_public: bool = False
    session_hours: int = Field(default=12, ge=1)
    roles: str = "web,probes,pipeline,notify"

    # Delivery: attempts before a message is dead-lettered, the first backoff in seconds, and the
    # longest backoff (it doubles up to that, with jitter). The defaults keep retrying for about
    # 75 minutes, so a receiver that is down for half an hour gets its pages within 5 minutes of
    # coming back.
    notify_max_attempts: int = Field(default=20, ge=1)
    notify_backoff_seconds: float = Field(default=5.0, gt=0)
    notify_backoff_max_seconds: float = Field(default=300.0, gt=0)
    # Webhook and apprise deliveries give up on one attempt after this many seconds.
    notify_timeout_seconds: float = Field(default=10.0, gt=0)
    # A message being sent is leased for this long: if the process dies mid-send (kill -9, power
    # loss), another worker or the restarted one sends it again, with the same idempotency key,
    # once the lease is over. Longer than the timeout, so a slow send is not sent twice.
    notify_lease_seconds: float = Field(default=60.0, gt=0)

    # Monitoring: raw check results are kept this long (uptime from the state history and the
    # daily statistics is kept for ever); the prober's canaries (host:port, comma-separated) tell
    # it whether its own network is up before it counts failures.
    results_retention_days: int = Field(default=31, ge=1)
    probe_canaries: str = ""
    probe_concurrency: int = Field(default=256, ge=1, le=10_000)

    # Alerts (rules override these per alert): a resolved alert that fires again within the reopen
    # window reopens (and so does its incident) instead of opening a new one; alerts on CIs or
    # services linked in the CMDB join each other's incident within the group window; the group-by
    # labels (comma-separated; empty: by service, else CI, else alertname) split incidents.
    alert_reopen_window_seconds: int = Field(default=900, ge=0, le=30 * 86400)
    alert_group_window_seconds: int = Field(default=600, ge=0, le=30 * 86400)
    alert_group_by: str = ""

    # Metrics store (opsdesk.metrics): days kept per resolution in the built-in SQL store, or a
    # Prometheus-compatible remote store (remote-write out, query API in) when both URLs are set.
    metrics_raw_retention_days: int = Field(default=7, ge=1)
    metrics_5m_retention_days: int = Field(default=90, ge=1)
    metrics_1h_retention_days: int = Field(default=400, ge=1)
    metrics_remote_write_url: str = ""  # e.g. http://prometheus:9090/api/v1/write
    metrics_remote_query_url: str = ""  # e.g. http://prometheus:9090 (the /api/v1/... base)
    metrics_remote_timeout_seconds: float = Field(default=10.0, gt=0)
    metrics_remote_retries: int = Field(default=3, ge=0, le=10)
    metrics_remote_bearer_token: SecretStr = SecretStr("")
    metrics_remote_username: str = ""
    metrics_remote_password: SecretStr = SecretStr("")

    # Postmortems: incidents of these priorities cannot be closed until their postmortem is
    # published. Environment: comma-separated (``P1,P2``) or a JSON list; empty: none required.
    postmortem_required_priorities: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["P1", "P2"]
    )

    @field_validator("postmortem_required_priorities", mode="before")
    @classmethod
    def _split_priorities(cls, v: Any) -> Any:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [p.strip().upper() for p in text.split(",") if p.strip()]
        return v

    @field_validator("postmortem_required_priorities")
    @classmethod
    def _known_priorities(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p not in ("P1", "P2", "P3", "P4", "P5")]
        if bad:
            raise ValueError(f"unknown priorities {bad}: use P1 to P5")
        return v

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'opsdesk.db').as_posix()}"
        if not self.base_url:
            self.base_url = f"http://{self.host}:{self.port}"
        self.base_url = self.base_url.rstrip("/")
        if self.notify_lease_seconds <= self.notify_timeout_seconds:
            raise ValueError(
                f"notify_lease_seconds ({self.notify_lease_seconds:g}) must be longer than"
                f" notify_timeout_seconds ({self.notify_timeout_seconds:g}): a send still waiting"
                " for its receiver would be sent a second time"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("OPSDESK_CONFIG_FILE")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"OPSDESK_CONFIG_FILE={config_file}: no such file")
            if path.suffix in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def role_set(self) -> set[str]:
        return {r.strip() for r in self.roles.split(",") if r.strip()}

    @property
    def canaries(self) -> list[str]:
        return [c.strip() for c in self.probe_canaries.split(",") if c.strip()]

    def ensure_secret_key(self) -> str:
        """The signing key: configured, or generated once and kept in the data directory."""
        if self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret_key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        key = path.read_text().strip()
        self.secret_key = SecretStr(key)
        return key

    def configure_secrets(self) -> None:
        """Let this process encrypt and decrypt stored secrets with this installation's key."""
        from opsdesk.core import crypto

        crypto.configure(self.ensure_secret_key())


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
