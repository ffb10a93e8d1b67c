"""The deployment templates, checked as far as a machine without the Bicep CLI allows: they are
well-formed, `azd` passes every parameter `main.bicep` needs, and the app settings they write are
the ones the app reads (and the ones it needs in Azure are there)."""

from __future__ import annotations

import json
import re

import pytest

from config import Settings
from tests.conftest import ROOT

INFRA = ROOT / "infra"
# Written by the templates for the platform (host storage, telemetry, identity), not read by config.py.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",
}
NEEDED_IN_AZURE = {"DATABASE_URL", "AI_PROVIDER", "AZURE_OPENAI_ENDPOINT", "ENRICH_SCHEDULE"}


def params(bicep: str) -> dict[str, bool]:
    """Declared parameters: name -> whether it has a default."""
    return {
        name: default is not None
        for name, default in re.findall(r"^param (\w+) [\w.]+(?: = (.+))?$", bicep, re.MULTILINE)
    }


def app_settings() -> set[str]:
    bicep = (INFRA / "app.bicep").read_text()
    block = bicep[bicep.index("name: 'appsettings'") :]
    block = block[: block.index("\n    }\n")]
    return set(re.findall(r"^\s+(\w+): ", block, re.MULTILINE)) - {"name", "properties"}


def settings_the_app_reads() -> set[str]:
    read = {name.upper() for name in Settings.model_fields}
    timers = (ROOT / "recommender" / "api" / "timers.py").read_text()
    read |= set(re.findall(r"%([A-Z_]+)%", timers))  # trigger bindings
    return read


@pytest.mark.parametrize("name", ["main.bicep", "app.bicep", "openai-role.bicep"])
def test_templates_are_balanced_and_use_no_literal_secrets(name: str):
    text = (INFRA / name).read_text()
    code = re.sub(r"'(?:[^'\\]|\\.)*'|//.*", "''", text)  # strings and comments out
    for opening, closing in ("{}", "[]", "()"):
        assert code.count(opening) == code.count(closing), (name, opening)
    assert not re.search(r"(?i)(password|apikey|api_key)\s*[:=]\s*'[^'$]", text)


def test_azd_passes_every_required_parameter():
    declared = params((INFRA / "main.bicep").read_text())
    passed = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(passed) <= set(declared), set(passed) - set(declared)
    assert {name for name, has_default in declared.items() if not has_default} <= set(passed)


def test_modules_get_every_parameter_they_require():
    main = (INFRA / "main.bicep").read_text()
    for module, path in re.findall(r"^module (\w+) '([\w-]+\.bicep)'", main, re.MULTILINE):
        block = main[main.index(f"module {module} ") :]
        block = block[block.index("params: {") : block.index("\n  }\n")]
        given = set(re.findall(r"^\s+(\w+): ", block, re.MULTILINE)) - {"params"}
        declared = params((INFRA / path).read_text())
        assert given <= set(declared), (module, given - set(declared))
        assert {n for n, has_default in declared.items() if not has_default} <= given, module


def test_app_settings_are_the_ones_the_app_reads():
    written = app_settings()
    assert written >= NEEDED_IN_AZURE
    assert written - PLATFORM_SETTINGS <= settings_the_app_reads(), written - settings_the_app_reads()


def test_the_database_url_comes_from_key_vault_and_no_secret_is_uploaded():
    bicep = (INFRA / "app.bicep").read_text()
    assert "DATABASE_URL: '@Microsoft.KeyVault(SecretUri=" in bicep
    assert "@secure()\nparam databaseUrl string" in bicep
    ignored = (ROOT / ".funcignore").read_text().split()
    assert {".env", "local.settings.json", "infra", ".azure"} <= set(ignored)


def test_azure_yaml_deploys_this_folder_as_a_python_function_app():
    text = (ROOT / "azure.yaml").read_text()
    assert re.search(
        r"^services:\n  api:\n    project: \.\n    language: python\n    host: function$", text, re.M
    )
