"""The credreg service: configuration, system of record, service layer, HTTP app and CLI."""
