"""The HTTP app: thin handlers over the service layer. Every error is application/problem+json."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry import auth, negotiation, pages
from registry.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RegistryError,
)
from registry.openapi import openapi
from registry.representations import render, resource_view
from registry.service import Outcome, Registry
from registry.store import Record, Version
from registry.wiring import extra_routes

log = logging.getLogger("credreg.http")
PROBLEM = "application/problem+json"
FORMATS = {"jsonld": "application/ld+json", "json": "application/json", "turtle": "text/turtle",
           "ttl": "text/turtle", "ntriples": "application/n-triples", "nt": "application/n-triples",
           "nquads": "application/n-quads", "nq": "application/n-quads", "html": "text/html"}
ALTERNATES = ("application/ld+json", "text/turtle", "application/n-triples",
              "application/n-quads", "text/html")
_TEXT = {"text/turtle", "text/html", "application/n-triples", "application/n-quads"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None,
          media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(data), status, headers, media_type)


def problem_response(error: RegistryError, instance: str | None = None) -> Response:
    return _json(error.body(instance), error.status, media_type=PROBLEM)


@lru_cache(maxsize=8192)
def _http_date(iso: str) -> str:
    return format_datetime(datetime.fromisoformat(iso.replace("Z", "+00:00")), usegmt=True)


def _choice(request: Request) -> negotiation.Choice:
    fmt = request.query_params.get("format")
    if fmt is not None:
        media = FORMATS.get(fmt.lower())
        if media is None:
            raise BadRequest(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.",
                             parameter="format")
        return negotiation.Choice(media)
    return negotiation.negotiate(request.headers.get("accept"))


# Relative references resolve against the record's own URL, so one string serves every record.
_ALTERNATES = ", ".join(f'<?format={k}>; rel="alternate"; type="{FORMATS[k]}"'
                        for k in ("jsonld", "turtle", "ntriples", "nquads", "html"))


_CONTEXT_LINK = '<https://credreg.net/ctdl/schema/context/json>; rel="http://www.w3.org/ns/json-ld#context"'


def _record_headers(request: Request, record: Record, media_type: str) -> dict[str, str]:
    links = _ALTERNATES
    if media_type in ("application/ld+json", "application/json"):
        links += ", " + _CONTEXT_LINK
    return {"ETag": f'"{record.etag}"', "Last-Modified": _http_date(record.modified),
            "Vary": "Accept", "Link": links}


def _content_type(choice: negotiation.Choice) -> str:
    media = choice.media_type
    if media == "application/ld+json" and choice.profile:
        return f'{media}; profile="{choice.profile}"'
    return f"{media}; charset=utf-8" if media in _TEXT else media


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    return "*" in tags or etag in tags


_INLINE_PREPARE_BYTES = 64 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes, declared or streamed."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The body is {length} bytes; the limit is {limit}.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


class Handlers:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.settings = registry.settings

    # --- helpers -------------------------------------------------------------------------------
    async def _body(self, request: Request) -> bytes:
        return await read_body(request, self.settings.max_body_bytes)

    def _principal(self, request: Request) -> auth.Principal:
        return auth.authenticate(self.registry.store, request.headers.get("authorization"))

    def _media_type(self, request: Request) -> str:
        return request.headers.get("content-type", "application/ld+json")

    def _serve(self, request: Request, record: Record, as_resource: bool) -> Response:
        choice = _choice(request)
        headers = _record_headers(request, record, choice.media_type)
        if _not_modified(request, record.etag):
            return Response(status_code=304, headers=headers)
        graph_iri = f"{self.settings.base_uri}/graph/{record.ctid}"
        if choice.media_type == "text/html":
            view = resource_view(orjson.loads(record.body))
            content = pages.record_page(record, view, request.url.path)
        elif as_resource:
            if choice.profile is None and choice.media_type in ("application/ld+json", "application/json") \
                    and record.resource:
                content = record.resource
            else:
                content = render(resource_view(orjson.loads(record.body)), None, graph_iri, choice)
        elif choice.profile is not None:
            content = render(orjson.loads(record.body), record.ntriples, graph_iri, choice)
        else:
            content = render({}, record.ntriples, graph_iri, choice, record.body)
        return Response(content, 200, headers, _content_type(choice))

    def _written(self, request: Request, outcome: Outcome) -> Response:
        record = outcome.record
        status = 201 if outcome.status == "created" else 200
        body = {"ctid": record.ctid, "status": outcome.status, "version": record.version,
                "etag": record.etag, "seq": record.seq,
                "problems": [p.as_dict() for p in outcome.problems]}
        headers = {"ETag": f'"{record.etag}"', "Location": f"/graph/{record.ctid}",
                   "Last-Modified": _http_date(record.modified)}
        return _json(body, status, headers)

    # --- routes --------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        store = self.registry.store
        choice = negotiation.negotiate(request.headers.get("accept"), ("application/json",
                                                                      "text/html"))
        if choice.media_type == "text/html":
            return Response(pages.home_page(store.count(), store.last_seq()),
                            media_type="text/html; charset=utf-8")
        return _json({"name": "credreg", "records": store.count(), "last_seq": store.last_seq(),
                      "openapi": "/openapi.json"})

    async def health(self, request: Request) -> Response:
        store = self.registry.store
        return _json({"status": "ok", "store": store.url.split("://")[0],
                      "schema_version": store.schema_version(), "last_seq": store.last_seq(),
                      "projection_lag": self.registry.projector.lag()})

    async def openapi(self, request: Request) -> Response:
        return _json(openapi(self.settings.base_uri))

    async def validate(self, request: Request) -> Response:
        raw = await self._body(request)
        if len(raw) > _INLINE_PREPARE_BYTES:
            return _json(await asyncio.to_thread(self.registry.validate_report, raw, self._media_type(request)))
        return _json(self.registry.validate_report(raw, self._media_type(request)))

    async def _publish(self, request: Request, path_ctid: str | None, mode: str) -> Response:
        principal = self._principal(request)
        raw = await self._body(request)
        if len(raw) > _INLINE_PREPARE_BYTES:  # keep the event loop free while a big graph is checked
            prepared = await asyncio.to_thread(self.registry.prepare, raw, self._media_type(request))
        else:  # a typical graph takes under a millisecond: a thread hop would cost more than it saves
            prepared = self.registry.prepare(raw, self._media_type(request))
        future = self.registry.submit_publish(prepared, principal, path_ctid=path_ctid,
                                              if_match=request.headers.get("if-match"), mode=mode)
        return self._written(request, await asyncio.wrap_future(future))

    async def put_graph(self, request: Request) -> Response:
        return await self._publish(request, request.path_params["ctid"], "put")

    async def post_graph(self, request: Request) -> Response:
        return await self._publish(request, None, "post")

    async def delete_graph(self, request: Request) -> Response:
        principal = self._principal(request)
        ctid = request.path_params["ctid"].lower()
        if request.query_params.get("purge") == "true":
            await asyncio.to_thread(self.registry.purge, ctid, principal)
            return Response(status_code=204)
        outcome = await asyncio.to_thread(self.registry.delete, ctid, principal,
                                          request.headers.get("if-match"))
        return _json({"ctid": ctid, "status": "deleted", "version": outcome.record.version,
                      "seq": outcome.record.seq})

    async def get_graph(self, request: Request) -> Response:
        return self._serve(request, self.registry.get(request.path_params["ctid"]), False)

    async def get_resource(self, request: Request) -> Response:
        return self._serve(request, self.registry.get(request.path_params["ctid"]), True)

    async def versions(self, request: Request) -> Response:
        ctid = request.path_params["ctid"].lower()
        versions = self.registry.versions(ctid)
        choice = negotiation.negotiate(request.headers.get("accept"), ("application/json",
                                                                      "text/html"))
        if choice.media_type == "text/html":
            return Response(pages.versions_page(ctid, versions),
                            media_type="text/html; charset=utf-8", headers={"Vary": "Accept"})
        return _json({"ctid": ctid, "versions": [_version_json(ctid, v) for v in versions]},
                     headers={"Vary": "Accept"})

    async def version(self, request: Request) -> Response:
        ctid = request.path_params["ctid"].lower()
        version = self.registry.version(ctid, request.path_params["n"])
        if version.action == "delete":
            return _json(_version_json(ctid, version))
        choice = _choice(request)
        if choice.media_type == "text/html":
            choice = negotiation.Choice("application/ld+json")
        envelope = orjson.loads(version.body)
        content = render(envelope, None, f"{self.settings.base_uri}/graph/{ctid}", choice,
                         version.body if choice.profile is None else None)
        return Response(content, 200, {"ETag": f'"{version.etag}"', "Vary": "Accept"},
                        _content_type(choice))

    async def changes(self, request: Request) -> Response:
        try:
            after = int(request.query_params.get("after", "0"))
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            raise BadRequest("'after' and 'limit' must be integers.", parameter="after") from None
        changes = self.registry.changes(after, limit)
        next_url = None
        headers: dict[str, str] = {}
        if len(changes) == limit:
            next_url = f"/changes?{urlencode({'after': changes[-1].seq, 'limit': limit})}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return _json({"changes": [{"seq": c.seq, "ctid": c.ctid, "version": c.version,
                                   "action": c.action, "etag": c.etag, "at": c.at}
                                  for c in changes],
                      "next": next_url, "last_seq": self.registry.store.last_seq()}, 200, headers)


def _version_json(ctid: str, v: Version) -> dict[str, Any]:
    return {"version": v.version, "action": v.action, "at": v.at, "etag": v.etag,
            "publisher": v.publisher, "href": f"/graph/{ctid}/versions/{v.version}"}


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return problem_response(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: RegistryError
    if exc.status_code == 404:
        error = NotFound(f"Nothing is served at {request.url.path}.")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
    else:
        error = RegistryError(exc.detail)
        error.status = exc.status_code
    response = problem_response(error, request.url.path)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(RegistryError("The server failed; the error was logged."),
                            request.url.path)


def create_app(registry: Registry) -> Starlette:
    h = Handlers(registry)
    routes = [
        Route("/", h.home, methods=["GET"]),
        Route("/health", h.health, methods=["GET"]),
        Route("/openapi.json", h.openapi, methods=["GET"]),
        Route("/validate", h.validate, methods=["POST"]),
        Route("/graph", h.post_graph, methods=["POST"]),
        Route("/graph/{ctid}", h.get_graph, methods=["GET"]),
        Route("/graph/{ctid}", h.put_graph, methods=["PUT"]),
        Route("/graph/{ctid}", h.delete_graph, methods=["DELETE"]),
        Route("/graph/{ctid}/versions", h.versions, methods=["GET"]),
        Route("/graph/{ctid}/versions/{n:int}", h.version, methods=["GET"]),
        Route("/resources/{ctid}", h.get_resource, methods=["GET"]),
        Route("/changes", h.changes, methods=["GET"]),
        *extra_routes(registry),
    ]
    # Reads are open to any origin (linked-data and SPARQL clients run in browsers); writes need a
    # key in a header, so credentials (cookies) are never involved.
    cors = Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD", "POST"],
                      allow_headers=["Accept", "Content-Type", "Authorization", "If-Match", "If-None-Match"],
                      expose_headers=["ETag", "Link", "Location", "Last-Modified"])
    app = Starlette(routes=routes, middleware=[cors], exception_handlers={
        RegistryError: _registry_error, HTTPException: _http_error, Exception: _unexpected})
    app.state.registry = registry
    return app
