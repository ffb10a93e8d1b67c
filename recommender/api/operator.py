"""The operator's routes: figures (the admin key), deleting a listener, health and the API's
own description (no key)."""

from __future__ import annotations

import logging

import azure.functions as func
import psycopg2

from recommender.api import openapi
from recommender.api.endpoint import OPERATOR, ROUTES, endpoint, json_response, parse_query, route_user_id
from recommender.schemas import AnalyticsQuery
from recommender.service import analytics as analytics_service
from recommender.service import dashboard, listeners
from recommender.service import health as health_service

log = logging.getLogger(__name__)

bp = func.Blueprint()


@endpoint(bp, "DELETE", "users/{user_id}", auth_level=OPERATOR, shares_route=True)
def delete_user(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(listeners.delete_user(route_user_id(req)))


@endpoint(bp, "GET", "analytics", auth_level=OPERATOR)
def analytics(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(analytics_service.analytics(parse_query(req, AnalyticsQuery)))


@endpoint(bp, "GET", "dashboard", auth_level=OPERATOR)
def dashboard_figures(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(dashboard.dashboard(parse_query(req, AnalyticsQuery)))


@endpoint(bp, "GET", "health", auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return json_response(health_service.health())
    except psycopg2.Error as exc:
        log.warning("health check failed: %s", type(exc).__name__)
        return json_response({"status": "error", "database": {"reachable": False}}, 503)


@endpoint(bp, "GET", "openapi.json", auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi.document(ROUTES))
