"""Settings: one typed field each, read from the environment; the documented table is the code's."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import Settings, settings_table
from tests.conftest import ROOT


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A clean environment: no setting of this machine's, no .env file."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def settings() -> Settings:
    return Settings(_env_file=None)


def test_the_documented_table_is_the_code():
    assert settings_table() in (ROOT / "docs" / "settings.md").read_text()


def test_defaults_run_offline_on_an_embedded_database(env):
    loaded = settings()
    assert (loaded.database_url, loaded.ai_provider, loaded.hnsw_ef_search) == ("", "local", 200)
    assert loaded.data_dir == ROOT / ".data"


def test_values_come_from_the_variable_of_the_same_name_trimmed_and_typed(env):
    env.setenv("HNSW_EF_SEARCH", " 64 ")
    env.setenv("PREPARE_PAGES", "false")
    env.setenv("USER_AUTH", "EasyAuth")
    env.setenv("AB_SALT", "")  # empty counts as unset
    loaded = settings()
    assert (loaded.hnsw_ef_search, loaded.prepare_pages, loaded.user_auth) == (64, False, "easyauth")
    assert loaded.ab_salt == "v1"


@pytest.mark.parametrize(
    ("variables", "provider"),
    [
        ({"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com"}, "azure"),
        ({"OPENAI_BASE_URL": "http://localhost:11434/v1"}, "openai"),
        ({"OPENAI_API_KEY": "sk-1", "AI_PROVIDER": "local"}, "local"),
    ],
)
def test_the_ai_provider_follows_what_is_configured(env, variables: dict[str, str], provider: str):
    for name, value in variables.items():
        env.setenv(name, value)
    assert settings().ai_provider == provider


@pytest.mark.parametrize(("name", "value"), [("USER_AUTH", "sometimes"), ("DB_POOL_MAX", "ten")])
def test_a_wrong_value_stops_the_app_naming_the_setting(env, name: str, value: str):
    env.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        settings()


def test_a_dot_env_file_is_read_and_the_environment_wins(env, tmp_path: Path):
    (tmp_path / ".env").write_text("AB_SALT=from-file\nAB_SPLIT=loop:1\n")
    env.setenv("AB_SPLIT", "history_only:1")
    loaded = Settings(_env_file=tmp_path / ".env")
    assert (loaded.ab_salt, loaded.ab_split) == ("from-file", "history_only:1")
