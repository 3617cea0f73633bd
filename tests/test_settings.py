"""Settings: environment over config file over defaults; the secret key is generated once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opsdesk.core.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("OPSDESK_"):
            monkeypatch.delenv(key)


def test_defaults_put_sqlite_under_the_data_dir():
    s = Settings()
    assert s.database_url == "sqlite:///var/opsdesk.db"
    assert (s.host, s.port, s.base_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")


def test_environment_sets_values(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPSDESK_PORT", "9090")
    monkeypatch.setenv("OPSDESK_SMTP_HOST", "mail.internal")
    s = Settings()
    assert s.port == 9090 and s.smtp_host == "mail.internal"
    assert s.database_url == f"sqlite:///{tmp_path.as_posix()}/opsdesk.db"


def test_toml_config_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    cfg = tmp_path / "opsdesk.toml"
    cfg.write_text('port = 7070\nsmtp_from = "ops@example.org"\nsmtp_port = 2525\n')
    monkeypatch.setenv("OPSDESK_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("OPSDESK_SMTP_PORT", "587")
    s = Settings()
    assert (s.port, s.smtp_from, s.smtp_port) == (7070, "ops@example.org", 587)


def test_yaml_config_file_is_read(monkeypatch, tmp_path):
    cfg = tmp_path / "opsdesk.yaml"
    cfg.write_text("host: 0.0.0.0\nbase_url: https://ops.example.org/\n")
    monkeypatch.setenv("OPSDESK_CONFIG_FILE", str(cfg))
    s = Settings()
    assert s.host == "0.0.0.0" and s.base_url == "https://ops.example.org"


def test_missing_config_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSDESK_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        Settings()


def test_wrong_type_in_environment_names_the_setting(monkeypatch):
    monkeypatch.setenv("OPSDESK_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_a_lease_not_longer_than_the_send_timeout_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSDESK_NOTIFY_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("OPSDESK_NOTIFY_LEASE_SECONDS", "30")
    with pytest.raises(ValidationError, match=r"notify_lease_seconds .* must be longer than notify_timeout"):
        Settings(data_dir=tmp_path)
    monkeypatch.setenv("OPSDESK_NOTIFY_LEASE_SECONDS", "31")
    assert Settings(data_dir=tmp_path).notify_lease_seconds == 31


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = Settings(data_dir=tmp_path).ensure_secret_key()
    second = Settings(data_dir=tmp_path).ensure_secret_key()
    assert first == second and len(first) >= 40
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
