"""Ingest: the front doors, admission, the pure event pipeline and the writer."""
