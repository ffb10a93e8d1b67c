"""The listener routes (a function key): history, recommendations, feedback and search. Every
`user_id` they are given is bound to the caller by the parsing (`endpoint.bound`)."""

from __future__ import annotations

import azure.functions as func

from config import get_settings
from recommender.api.endpoint import (
    act_as,
    endpoint,
    error_item,
    is_array,
    json_response,
    parse_body,
    parse_items,
    parse_query,
    route_user_id,
)
from recommender.schemas import FeedbackRequest, RecommendQuery, SearchQuery, UpdateUserHistoryRequest
from recommender.service import feedback as feedback_service
from recommender.service import listeners, recommend
from recommender.service import search as search_service
from recommender.service.errors import ServiceError

bp = func.Blueprint()


@endpoint(bp, "POST", "update_user_history")
def update_user_history(req: func.HttpRequest) -> func.HttpResponse:
    request = parse_body(req, UpdateUserHistoryRequest)
    return json_response(listeners.update_user_history(request))


@endpoint(bp, "GET", "recommend_podcasts")
def recommend_podcasts(req: func.HttpRequest) -> func.HttpResponse:
    query = parse_query(req, RecommendQuery)
    return json_response(recommend.recommend(query))


@endpoint(bp, "POST", "feedback")
def feedback(req: func.HttpRequest) -> func.HttpResponse:
    """One event (an object): the stored event, 201, or 200 if its event_id was stored before.
    Many (an array): one result per item, in order; a bad item does not stop the good ones."""
    if not is_array(req):
        request = parse_body(req, FeedbackRequest)
        event, created = feedback_service.record_feedback(request)
        return json_response(event, 201 if created else 200)
    results, valid = parse_items(req, FeedbackRequest, get_settings().max_bulk_events)
    outcomes = feedback_service.record_feedback_bulk([request for _, request in valid])
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, ServiceError):
            results[index] = error_item(outcome)
        else:
            event, created = outcome
            results[index] = {"id": event["id"], "created": created, "event_id": event["event_id"]}
    return json_response({"results": results})


@endpoint(bp, "GET", "users/{user_id}", shares_route=True)
def read_user(req: func.HttpRequest) -> func.HttpResponse:
    """The listener's own data (under USER_AUTH=easyauth, only their own)."""
    user_id = route_user_id(req)
    act_as(req, user_id)
    return json_response(listeners.own_view(user_id))


@endpoint(bp, "GET", "search")
def search(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(search_service.search(parse_query(req, SearchQuery)))
