"""Search: index documents derived from CTDL graphs, the query model, and the engines behind it
(embedded Tantivy by default, Elasticsearch/OpenSearch for scale), fed by the change log."""
