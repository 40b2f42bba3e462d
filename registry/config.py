"""Typed configuration from `CREDREG_*` environment variables, validated at start-up."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting the service reads. `credreg config` prints them, secrets masked."""

    model_config = SettingsConfigDict(env_prefix="CREDREG_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    base_uri: str = ""  # default http://{host}:{port}
    store_url: str = ""  # default sqlite:///{data_dir}/registry.sqlite3
    auto_migrate: bool = True
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_nodes: int = Field(default=10_000, ge=1)
    max_depth: int = Field(default=32, ge=2)
    page_limit: int = Field(default=1000, ge=1)
    durable: bool = True  # fsync every commit (SQLite synchronous=FULL)
    group_commit_ms: float = Field(default=2.0, ge=0, le=100)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # which projections follow the change log (comma-separated): "search" (GET /search) and "rdf"
    # (/sparql, /.well-known/void); a registry that only stores and serves records can turn both off
    projections: str = "search,rdf"
    # search: embedded Tantivy under data_dir/search by default; http(s)://… for Elasticsearch/OpenSearch
    search_url: str = ""
    search_index: str = "credreg"  # Elasticsearch alias (indices are versioned behind it)
    search_max_page: int = Field(default=100, ge=1, le=1000)
    # RDF: embedded Oxigraph under data_dir/oxigraph by default; http(s)://… for a remote SPARQL 1.1 server
    rdf_url: str = ""
    sparql_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    sparql_max_results: int = Field(default=100_000, ge=1)
    # embedded Oxigraph: query worker processes (0: min(4, max(2, CPUs))), and how many queries may
    # wait for a busy worker; one more gets 503 with Retry-After at once instead of waiting
    sparql_workers: int = Field(default=0, ge=0, le=32)
    sparql_queue: int = Field(default=16, ge=0, le=32)
    # dumps: `credreg serve` writes a new one once the newest is this old and records have changed
    # since (0: only `credreg dump` and the first request for /dumps/latest.* write them)
    dump_interval_s: float = Field(default=3600.0, ge=0)

    @field_validator("projections")
    @classmethod
    def _known_projections(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = sorted(set(names) - {"search", "rdf"})
        if unknown:
            raise ValueError(f"CREDREG_PROJECTIONS: unknown projection(s) {', '.join(unknown)}; "
                             "use search, rdf or both")
        return ",".join(dict.fromkeys(names))

    @field_validator("base_uri")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.base_uri:
            self.base_uri = f"http://{self.host}:{self.port}"
        if not self.store_url:
            self.store_url = f"sqlite:///{self.data_dir / 'registry.sqlite3'}"
        if not self.store_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("CREDREG_STORE_URL must be sqlite:///PATH or postgresql://…")
        if self.env == "production":
            if self.base_uri.startswith(("http://127.", "http://localhost")):
                raise ValueError("CREDREG_BASE_URI must be the public URI in production")
            if not self.durable:
                raise ValueError("CREDREG_DURABLE=false is refused in production")
        return self

    def masked(self) -> dict[str, Any]:
        """The effective settings with passwords in URLs masked."""
        out = self.model_dump(mode="json")
        for name in ("store_url", "search_url", "rdf_url"):
            out[name] = mask_url(out[name])
        return out


def mask_url(url: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def load(**overrides: Any) -> Settings:
    return Settings(**overrides)
