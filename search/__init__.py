"""Search: index documents derived from CTDL graphs, the query model and its backends."""
