"""hsl_live: HSL's live vehicle feed as a live map, a Parquet lake and SQL."""

__version__ = "0.1.0"
