"""The error hierarchy. Each class carries its HTTP status and a stable problem type; the HTTP app
renders every one as RFC 9457 application/problem+json, and nothing else reaches a client."""
from __future__ import annotations

from typing import Any

PROBLEM_BASE = "urn:credreg:problem:"


class RegistryError(Exception):
    status = 500
    slug = "internal-error"
    title = "Internal server error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status,
                                "detail": self.detail}
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def _error(name: str, status: int, slug: str, title: str) -> type[RegistryError]:
    return type(name, (RegistryError,), {"status": status, "slug": slug, "title": title})


BadRequest = _error("BadRequest", 400, "bad-request", "Bad request")
Unauthorized = _error("Unauthorized", 401, "unauthorized", "An API key is required")
Forbidden = _error("Forbidden", 403, "forbidden", "This key may not do that")
NotFound = _error("NotFound", 404, "not-found", "Not found")
MethodNotAllowed = _error("MethodNotAllowed", 405, "method-not-allowed", "Method not allowed")
NotAcceptable = _error("NotAcceptable", 406, "not-acceptable", "No acceptable representation")
Conflict = _error("Conflict", 409, "conflict", "Conflict")
Gone = _error("Gone", 410, "gone", "The record was deleted")
PreconditionFailed = _error("PreconditionFailed", 412, "precondition-failed",
                            "The record changed since you read it")
PayloadTooLarge = _error("PayloadTooLarge", 413, "payload-too-large", "The request body is too large")
UnsupportedMediaType = _error("UnsupportedMediaType", 415, "unsupported-media-type",
                              "Unsupported media type")
PreconditionRequired = _error("PreconditionRequired", 428, "precondition-required",
                              "Send If-Match with the ETag you read")
ServiceUnavailable = _error("ServiceUnavailable", 503, "unavailable", "Service unavailable")
# SPARQL endpoint (registry/sparql.py)
UpdateRefused = _error("UpdateRefused", 403, "sparql-update-refused", "This endpoint answers queries only")
QueryTimedOut = _error("QueryTimedOut", 503, "query-timeout", "The query ran out of time")
ResultCapExceeded = _error("ResultCapExceeded", 400, "result-too-large",
                           "The result is larger than the endpoint returns")
MalformedQuery = _error("MalformedQuery", 400, "malformed-query", "The query does not parse")
SparqlBusy = _error("SparqlBusy", 503, "sparql-busy", "Every query worker is busy")
FederatedQueryRefused = _error("FederatedQueryRefused", 400, "sparql-service-refused",
                               "This endpoint does not run federated queries (SERVICE)")


class ValidationFailed(RegistryError):
    """The document has errors. `problems` lists every problem found, errors and warnings."""

    status = 422
    slug = "validation-failed"
    title = "The graph document is not valid"

    def __init__(self, detail: str, problems: list[dict[str, str]]) -> None:
        super().__init__(detail, problems=problems)
