"""Benchmarks of hsl_live (`make bench`): ingest, live view, memory, lake and SQL."""
