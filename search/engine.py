"""The search engine a deployment uses, chosen by CREDREG_SEARCH_URL: empty for the embedded
Tantivy index under the data directory, http(s)://… for Elasticsearch 8/9 or OpenSearch 2."""
from __future__ import annotations

from registry.config import Settings
from search.backend import Backend
from search.projection import SearchProjection


def open_backend(settings: Settings) -> Backend:
    if settings.search_url.startswith(("http://", "https://")):
        from search.elasticsearch_backend import ElasticsearchBackend

        return ElasticsearchBackend.from_url(settings.search_url, settings.search_index)
    if settings.search_url:
        raise ValueError("CREDREG_SEARCH_URL must be empty (embedded Tantivy) or http(s)://…")
    from search.tantivy_backend import TantivyBackend

    return TantivyBackend(settings.data_dir / "search")


def open_projection(settings: Settings) -> SearchProjection:
    return SearchProjection(open_backend(settings))
