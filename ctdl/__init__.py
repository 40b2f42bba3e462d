"""The CTDL vocabulary and its rules: vendored context and schema, CTIDs, JSON-LD to RDF,
normalization of real-world variants, validation and canonical hashing."""
