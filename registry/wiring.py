"""Where the features that follow the change log plug in: projections and their HTTP routes.

Each feature owns one section; the service and the app call these two functions only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from registry.config import Settings
from registry.projections import Projection

if TYPE_CHECKING:
    from registry.service import Registry


def build_projections(settings: Settings) -> list[Projection]:
    projections: list[Projection] = []
    # --- search (search/) ---
    # --- RDF store and SPARQL (registry/rdfstore/) ---
    return projections


def extra_openapi_paths() -> dict[str, Any]:
    """OpenAPI path items of the feature routes (merged into /openapi.json)."""
    paths: dict[str, Any] = {}
    # --- search (search/) ---
    # --- RDF store, SPARQL, dumps, VoID ---
    return paths


def extra_routes(registry: Registry) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    # --- search (search/) ---
    # --- RDF store, SPARQL, dumps, VoID (registry/rdfstore/, registry/sparql.py, registry/dumps.py) ---
    return routes
