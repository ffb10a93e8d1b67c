"""The catalogue's reads (a function key): what a frontend's shelves show. Episodes, a page of
them with filters, the categories, and "more like this" for an episode page."""

from __future__ import annotations

import azure.functions as func

from recommender.api.endpoint import endpoint, json_response, parse_query, route_id
from recommender.schemas import EpisodesQuery, NoQuery, SimilarQuery
from recommender.service import browse

bp = func.Blueprint()


@endpoint(bp, "GET", "podcasts")
def list_podcasts(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(browse.episodes(parse_query(req, EpisodesQuery)))


@endpoint(bp, "GET", "podcasts/{podcast_id}", shares_route=True)
def read_podcast(req: func.HttpRequest) -> func.HttpResponse:
    parse_query(req, NoQuery)
    return json_response(browse.episode(route_id(req, "podcast_id")))


@endpoint(bp, "GET", "podcasts/{podcast_id}/similar")
def similar_podcasts(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(browse.similar(route_id(req, "podcast_id"), parse_query(req, SimilarQuery)))


@endpoint(bp, "GET", "categories")
def list_categories(req: func.HttpRequest) -> func.HttpResponse:
    parse_query(req, NoQuery)
    return json_response(browse.categories())
