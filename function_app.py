"""The Azure Functions app (Python v2 programming model): every function is registered on a
blueprint of `recommender/api/`, one per area; this file only puts them together, so `func start`
and Azure's indexer find them all."""

import azure.functions as func

from recommender.api import browse, catalogue, console, listeners, operator, timers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for area in (catalogue, browse, listeners, operator, console, timers):
    app.register_functions(area.bp)
