"""The deployment templates, checked as far as a machine without the Bicep CLI allows: they are
well-formed, `azd` passes every parameter `main.bicep` needs, and the app settings they write are
the ones the app reads (and the ones it needs in Azure are there)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

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


def parameter_variables() -> set[str]:
    """The environment variables `azd` reads into the templates' parameters."""
    return set(re.findall(r"\$\{(\w+)", (INFRA / "main.parameters.json").read_text()))


def test_the_deploy_path_never_migrates_from_the_operators_machine():
    """The app creates its schema for its own embedding model: a migration run where the AI
    settings are missing would make tables of the offline model's dimensions."""
    assert "migrate" not in (ROOT / "azure.yaml").read_text().split("hooks:")[1]
    docs = (ROOT / "docs" / "deployment.md").read_text()
    azd = docs[docs.index("With the [Azure Developer CLI]") : docs.index("By hand, on an existing")]
    for block in re.findall(r"```bash\n(.*?)```", azd, re.S):
        assert "migrate" not in block


def test_the_documented_azd_variables_are_the_ones_the_templates_read():
    docs = (ROOT / "docs" / "deployment.md").read_text()
    documented = set(re.findall(r"azd env set (\w+)", docs)) | set(
        re.findall(r"\b(AZURE_OPENAI_(?:RESOURCE_GROUP|\w+_DEPLOYMENT))\b", docs.split("azd up")[0])
    )
    assert documented <= parameter_variables() | {"AZURE_OPENAI_ENDPOINT"}, documented - parameter_variables()
    assert {"AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "AZURE_OPENAI_CHAT_DEPLOYMENT"} <= parameter_variables()


def test_the_hooks_use_only_what_the_templates_output():
    outputs = set(re.findall(r"^output (\w+) ", (INFRA / "main.bicep").read_text(), re.M))
    used = set(re.findall(r"\$(\w+)", (ROOT / "azure.yaml").read_text()))
    assert used <= outputs, used - outputs


def test_the_app_is_told_the_deployment_names_that_are_created():
    bicep = (INFRA / "app.bicep").read_text()
    for setting, resource in [
        ("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "embeddingDeployment"),
        ("AZURE_OPENAI_CHAT_DEPLOYMENT", "chatDeployment"),
    ]:
        value = re.search(rf"{setting}: (\w+)", bicep).group(1)
        created = bicep[bicep.index(f"resource {resource} ") :]
        assert re.search(r"^  name: (\w+)$", created, re.M).group(1) == value, setting


def test_the_cli_refuses_to_make_a_schema_for_the_offline_model_by_default():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_OPENAI", "OPENAI", "AI_PROVIDER"))}
    env |= {"DATABASE_URL": "postgresql://127.0.0.1:9/none?connect_timeout=1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "cli.py", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "384" in run.stderr and "AI_PROVIDER=local" in run.stderr
    assert "Traceback" not in run.stderr
