"""The tree explains itself: the layers import downward only, SQL lives in the data layer, modules
stay small, and function_app.py registers every function."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import azure.functions as func
import pytest

from tests.conftest import ROOT, app_functions

PACKAGE = ROOT / "recommender"
APP = [ROOT / name for name in ("function_app.py", "config.py", "db_utils.py", "openai_client.py", "cli.py")]
APP += [ROOT / "local_runner.py", *sorted(PACKAGE.rglob("*.py"))]
DATA_LAYER = {ROOT / "db_utils.py", *PACKAGE.joinpath("store").glob("*.py")}
DATA_LAYER |= set(PACKAGE.joinpath("spark").glob("*.py"))  # the Spark job: its own reads and writes
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TEMP\s+)?TABLE|LISTEN\s|"
    r"pg_\w+\(|set_config\()",
    re.DOTALL,
)
MAX_LINES = 400

# What each layer may import from the package (and the top-level modules): downward only.
LAYERS = {
    "model": {"model", "ai.text"},  # pure: numpy and scipy, no database, no Azure, no AI calls
    "ai": {"ai", "config", "openai_client"},
    "store": {"store", "model", "db_utils", "config"},
    "service": {"service", "store", "model", "ai", "schemas", "db_utils", "config", "openai_client"},
    "worker": {"worker", "service", "store", "model", "ai", "db_utils", "config"},
    "api": {"api", "service", "worker", "schemas", "db_utils", "config", "openai_client"},
    "runner": {"runner", "store", "db_utils", "config"},
    "spark": set(),  # one file uploaded alone to a cluster: pyspark and the standard library only
}


def strings(path: Path) -> list[str]:
    """The string literals of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def imported(path: Path) -> set[str]:
    """What a module imports of the app: `store.users`, `db_utils`, ... (absolute names, the
    package's without its `recommender.` prefix)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "recommender":
                names |= {f"recommender.{alias.name}" for alias in node.names}
    ours = {"db_utils", "config", "openai_client"}
    return {n.removeprefix("recommender.") for n in names if n.startswith("recommender.") or n in ours}


def test_no_sql_outside_the_data_layer():
    found = {
        str(path.relative_to(ROOT)): match.group(0)[:40]
        for path in APP
        if path not in DATA_LAYER
        for text in strings(path)
        if (match := SQL.search(text))
    }
    assert found == {}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_below_it(layer: str):
    allowed = LAYERS[layer]
    wrong = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported(path) if not any(name == a or name.startswith(a + ".") for a in allowed)
        )
        for path in PACKAGE.joinpath(layer).glob("*.py")
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_only_the_http_layer_and_the_local_runner_know_azure_functions():
    knows = {
        str(path.relative_to(ROOT))
        for path in APP
        if re.search(r"^(import|from) azure\.functions", path.read_text(), re.MULTILINE)
    }
    assert {p for p in knows if not p.startswith(("recommender/api/", "recommender/runner/"))} == {
        "function_app.py",
        "local_runner.py",
    }


def test_every_module_is_under_400_lines():
    python = [p for p in ROOT.rglob("*.py") if not p.relative_to(ROOT).parts[0].startswith(".")]
    long = {
        str(p.relative_to(ROOT)): n for p in python if (n := len(p.read_text().splitlines())) >= MAX_LINES
    }
    assert long == {}


def test_function_app_registers_every_function_with_its_route_methods_and_key():
    """What Azure's indexer and `func start` read: `function_app.app.get_functions()`, in a fresh
    interpreter as they run it (an app lets its functions be read once)."""
    functions = app_functions()
    http = {name: (f["route"], f["auth"]) for name, f in functions.items() if f["type"] == "httpTrigger"}
    assert http == {
        "add_podcast": ("add_podcast", "ADMIN"),
        "add_podcasts": ("add_podcasts", "ADMIN"),
        "podcast_by_id": ("podcasts/{podcast_id}", "ADMIN"),
        "podcast_status": ("podcasts/{podcast_id}/status", "ADMIN"),
        "update_user_history": ("update_user_history", "FUNCTION"),
        "recommend_podcasts": ("recommend_podcasts", "FUNCTION"),
        "feedback": ("feedback", "FUNCTION"),
        "search": ("search", "FUNCTION"),
        "read_user": ("users/{user_id}", "FUNCTION"),
        "list_podcasts": ("podcasts", "FUNCTION"),
        "read_podcast": ("podcasts/{podcast_id}", "FUNCTION"),
        "similar_podcasts": ("podcasts/{podcast_id}/similar", "FUNCTION"),
        "list_categories": ("categories", "FUNCTION"),
        "delete_user": ("users/{user_id}", "ADMIN"),
        "analytics": ("analytics", "ADMIN"),
        "dashboard_figures": ("dashboard", "ADMIN"),
        "health": ("health", "ANONYMOUS"),
        "openapi_document": ("openapi.json", "ANONYMOUS"),
        "ui": ("ui", "ANONYMOUS"),
        "ui_file": ("ui/{file}", "ANONYMOUS"),
    }
    every_method = sorted(m.value for m in func.HttpMethod)  # so that others get the app's JSON 405
    shared = {"read_user": ["GET", "HEAD"], "delete_user": ["DELETE"], "read_podcast": ["GET", "HEAD"]}
    shared["podcast_by_id"] = ["DELETE", "PATCH"]  # a route two functions serve: each its own methods
    http_methods = {name: f["methods"] for name, f in functions.items() if f["type"] == "httpTrigger"}
    assert http_methods == {name: shared.get(name, every_method) for name in http_methods}
    assert functions["enrich_pending"] == {**functions["enrich_pending"], "type": "timerTrigger"}
    assert functions["enrich_pending"]["schedule"] == "%ENRICH_SCHEDULE%"
    source = (ROOT / "function_app.py").read_text()
    assert not re.search(r"^\s*(def|class) ", source, re.MULTILINE)  # wiring only
