"""Where the features that follow the change log plug in: projections and their HTTP routes.

Each feature owns one section; the service and the app call these two functions only.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from registry.config import Settings
from registry.projections import Projection

if TYPE_CHECKING:
    from registry.service import Registry


def build_projections(settings: Settings) -> list[Projection]:
    projections: list[Projection] = []
    enabled = settings.projections.split(",")
    # --- search (search/) ---
    if "search" in enabled:
        from search.engine import open_projection

        projections.append(open_projection(settings))
    # --- RDF store and SPARQL (registry/rdfstore/) ---
    if "rdf" in enabled:
        from registry.rdfstore import open_triple_store
        from registry.rdfstore.projection import RdfProjection

        projections.append(RdfProjection(open_triple_store(settings), settings.base_uri))
    return projections


def extra_openapi_paths() -> dict[str, Any]:
    """OpenAPI path items of the feature routes (merged into /openapi.json)."""
    paths: dict[str, Any] = {}
    # --- search (search/) ---
    from search.http import openapi_paths

    paths.update(openapi_paths())
    # --- RDF store, SPARQL, dumps, VoID ---
    from registry.sparql import rdf_openapi_paths

    paths.update(rdf_openapi_paths())
    return paths


def extra_routes(registry: Registry) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    # --- search (search/) ---
    from search.http import routes as search_routes

    routes.extend(search_routes(registry))
    # --- RDF store, SPARQL, dumps, VoID (registry/rdfstore/, registry/sparql.py, registry/dumps.py) ---
    from registry.sparql import rdf_routes

    routes.extend(rdf_routes(registry))
    return [_behind_barrier(route, registry) for route in routes]


def _behind_barrier(route: BaseRoute, registry: Registry) -> BaseRoute:
    """These routes answer from projections: each request first waits until they have applied
    every change committed before it arrived (read-your-writes after a publish returns)."""
    if not isinstance(route, Route):
        return route
    endpoint = route.endpoint

    async def guarded(request: Request) -> Response:
        await registry.projector.barrier()
        response = endpoint(request)
        return await response if inspect.isawaitable(response) else response

    return Route(route.path, guarded, methods=list(route.methods or ()), name=route.name)
