"""The catalogue's routes (operator: the admin key): add, change and delete episodes."""

from __future__ import annotations

import azure.functions as func

from config import get_settings
from recommender.api.endpoint import OPERATOR, endpoint, json_response, parse_body, parse_items, route_id
from recommender.schemas import AddPodcastRequest, UpdatePodcastRequest
from recommender.service import catalogue

bp = func.Blueprint()


@endpoint(bp, "POST", "add_podcast", auth_level=OPERATOR)
def add_podcast(req: func.HttpRequest) -> func.HttpResponse:
    podcast, created = catalogue.add_podcast(parse_body(req, AddPodcastRequest))
    status = 202 if podcast["status"] == "pending" else 201 if created else 200
    return json_response(podcast, status)


@endpoint(bp, "POST", "add_podcasts", auth_level=OPERATOR)
def add_podcasts(req: func.HttpRequest) -> func.HttpResponse:
    """Bulk ingest: one result per item, in order; a bad item does not stop the good ones."""
    results, valid = parse_items(req, AddPodcastRequest, get_settings().max_bulk_items)
    stored = catalogue.add_podcasts([request for _, request in valid]) if valid else []
    for (index, _), (podcast, created) in zip(valid, stored, strict=True):
        results[index] = {"id": podcast["id"], "status": podcast["status"], "created": created}
    return json_response({"results": results})


@endpoint(bp, ["PATCH", "DELETE"], "podcasts/{podcast_id}", auth_level=OPERATOR, shares_route=True)
def podcast_by_id(req: func.HttpRequest) -> func.HttpResponse:
    podcast_id = route_id(req, "podcast_id")
    if req.method.upper() == "DELETE":
        return json_response(catalogue.delete_podcast(podcast_id))
    return json_response(catalogue.update_podcast(podcast_id, parse_body(req, UpdatePodcastRequest)))


@endpoint(bp, "GET", "podcasts/{podcast_id}/status", auth_level=OPERATOR)
def podcast_status(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(catalogue.podcast(route_id(req, "podcast_id")))
