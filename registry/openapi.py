"""The OpenAPI 3.1 description of every route, RDF media types included."""
from __future__ import annotations

from typing import Any

from registry.wiring import extra_openapi_paths

RDF_TYPES = ("application/ld+json", "text/turtle", "application/n-triples",
             "application/n-quads", "text/html")
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_CTID = {"name": "ctid", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^ce-[0-9a-fA-F-]{36}$"}}
_GRAPH_BODY = {"required": True, "content": {
    "application/ld+json": {"schema": {"$ref": "#/components/schemas/GraphDocument"}},
    "text/turtle": {"schema": {"type": "string"}},
    "application/n-triples": {"schema": {"type": "string"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "Problem (RFC 9457)", "content": _PROBLEM} for c in codes}


def _rdf_ok(description: str) -> dict[str, Any]:
    return {"description": description,
            "headers": {"ETag": {"schema": {"type": "string"}},
                        "Last-Modified": {"schema": {"type": "string"}}},
            "content": {t: {"schema": {"type": "object" if "json" in t else "string"}}
                        for t in RDF_TYPES}}


def _json_ok(description: str, ref: str | None = None) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"} if ref else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi(base_uri: str) -> dict[str, Any]:
    write: dict[str, Any] = {"security": [{"apiKey": []}]}
    if_match = {"name": "If-Match", "in": "header", "schema": {"type": "string"}}
    fmt = {"name": "format", "in": "query", "schema": {
        "type": "string", "enum": ["jsonld", "turtle", "ntriples", "nquads", "html"]}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "credreg", "version": "0.1.0",
                 "description": "A linked-data registry for credentials (CTDL)."},
        "servers": [{"url": base_uri}],
        "paths": {
            "/": {"get": {"summary": "Registry summary", "responses": {"200": _json_ok("Summary")}}},
            "/health": {"get": {"summary": "Health and projection lag",
                                "responses": {"200": _json_ok("Health")}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": _json_ok("OpenAPI")}}},
            "/validate": {"post": {"summary": "Validate a graph document (dry run, nothing stored)",
                                   "requestBody": _GRAPH_BODY,
                                   "responses": {"200": _json_ok("Validation report", "Report"),
                                                 **_errors(413, 415)}}},
            "/graph": {"post": {"summary": "Create a graph from its own CTID", **write,
                                "requestBody": _GRAPH_BODY,
                                "responses": {"201": _json_ok("Created", "WriteResult"),
                                              **_errors(400, 401, 403, 409, 413, 415, 422)}}},
            "/graph/{ctid}": {
                "parameters": [_CTID],
                "get": {"summary": "The graph envelope", "parameters": [fmt],
                        "responses": {"200": _rdf_ok("The graph"), "304": {"description": "Not modified"},
                                      **_errors(404, 406, 410)}},
                "put": {"summary": "Create (201) or replace (200, If-Match required)", **write,
                        "parameters": [if_match], "requestBody": _GRAPH_BODY,
                        "responses": {"200": _json_ok("Replaced", "WriteResult"),
                                      "201": _json_ok("Created", "WriteResult"),
                                      **_errors(400, 401, 403, 412, 413, 415, 422, 428)}},
                "delete": {"summary": "Delete (tombstone); ?purge=true removes physically (admin)",
                           **write, "parameters": [if_match, {"name": "purge", "in": "query",
                                                              "schema": {"type": "boolean"}}],
                           "responses": {"200": _json_ok("Deleted"), "204": {"description": "Purged"},
                                         **_errors(401, 403, 404, 410, 412, 428)}}},
            "/graph/{ctid}/versions": {"parameters": [_CTID], "get": {
                "summary": "Version history", "responses": {"200": _json_ok("Versions"),
                                                            **_errors(404)}}},
            "/graph/{ctid}/versions/{n}": {"parameters": [_CTID, {
                "name": "n", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "get": {"summary": "One version", "parameters": [fmt],
                        "responses": {"200": _rdf_ok("The version"), **_errors(404, 406)}}},
            "/resources/{ctid}": {"parameters": [_CTID], "get": {
                "summary": "The main resource with the blank nodes it references",
                "parameters": [fmt],
                "responses": {"200": _rdf_ok("The resource"), "304": {"description": "Not modified"},
                              **_errors(404, 406, 410)}}},
            "/changes": {"get": {
                "summary": "The change log (creates, updates, deletes), cursor-paged",
                "parameters": [{"name": "after", "in": "query", "schema": {"type": "integer"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": _json_ok("A page of changes"), **_errors(400)}}},
            **extra_openapi_paths(),
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {"type": "object", "required": ["type", "title", "status"],
                            "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                           "status": {"type": "integer"},
                                           "detail": {"type": "string"},
                                           "instance": {"type": "string"},
                                           "problems": {"type": "array", "items": {
                                               "$ref": "#/components/schemas/ProblemItem"}}}},
                "ProblemItem": {"type": "object", "properties": {
                    k: {"type": "string"} for k in
                    ("code", "severity", "pointer", "message", "node", "property")}},
                "Report": {"type": "object", "properties": {
                    "valid": {"type": "boolean"}, "ctid": {"type": ["string", "null"]},
                    "errors": {"type": "integer"}, "warnings": {"type": "integer"},
                    "problems": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/ProblemItem"}}}},
                "WriteResult": {"type": "object", "properties": {
                    "ctid": {"type": "string"}, "status": {"type": "string"},
                    "version": {"type": "integer"}, "etag": {"type": "string"},
                    "seq": {"type": "integer"}}},
                "GraphDocument": {"type": "object", "description":
                                  "A CTDL graph envelope {@context, @id, @graph} or a single node"},
            },
        },
    }
