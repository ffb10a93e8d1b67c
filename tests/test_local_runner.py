"""The local runner reads routes and timers from the FunctionApp itself."""

from __future__ import annotations

import azure.functions as func
import httpx
import pytest

import local_runner
from config import get_settings


def test_route_templates_become_patterns():
    pattern = local_runner.compile_route("api", "podcasts/{id:int}/{part?}")
    assert pattern.match("/api/podcasts/12/x").groupdict() == {"id": "12", "part": "x"}
    assert pattern.match("/api/podcasts/12/")
    assert not pattern.match("/api/podcasts")
    assert local_runner.compile_route("", "health").match("/health")


def test_serves_exactly_the_registered_functions_over_http():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{item_id}", methods=["GET"])
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        body = f"{req.route_params['item_id']}:{req.params.get('q')}:{req.method}"
        return func.HttpResponse(body, status_code=203, headers={"X-Seen": "1"}, mimetype="text/plain")

    @app.route(route="echo", methods=["POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.get_body(), mimetype="application/octet-stream")

    running = local_runner.serve(app.get_functions(), port=0)
    base = f"http://127.0.0.1:{running.server.server_address[1]}"
    try:
        got = httpx.get(f"{base}/api/items/7", params={"q": "a b"})
        assert (got.status_code, got.text, got.headers["x-seen"]) == (203, "7:a b:GET", "1")
        assert got.headers["content-type"].startswith("text/plain")
        assert httpx.post(f"{base}/api/echo", content=b"\x00\x01").content == b"\x00\x01"
        assert httpx.delete(f"{base}/api/items/7").status_code == 405
        assert httpx.get(f"{base}/api/other").status_code == 404
    finally:
        running.shutdown()


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("*/10 * * * * *", 10),
        ("0 */5 * * * *", 300),
        ("0 0 * * * *", 3600),
        ("0 0 */2 * * *", 7200),
        ("0 30 9 * * 1-5", 60),  # not a fixed interval: every minute
    ],
)
def test_timer_schedules_become_intervals(schedule: str, seconds: float):
    assert local_runner.schedule_interval(schedule) == seconds


def test_a_setting_schedule_is_read_from_the_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ENRICH_SCHEDULE", "0 */15 * * * *")
    get_settings.cache_clear()
    try:
        assert local_runner.schedule_interval("%ENRICH_SCHEDULE%") == 900
    finally:
        get_settings.cache_clear()
