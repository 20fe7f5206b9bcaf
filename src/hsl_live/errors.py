"""The package's exception hierarchy."""


class HslLiveError(Exception):
    """Base class of every error hsl_live raises on purpose."""


class SettingsError(HslLiveError):
    """A configuration value is missing or malformed."""


class CaptureError(HslLiveError):
    """A capture file cannot be opened or written."""


class SinkError(HslLiveError):
    """The lake's storage refused or failed a write."""


class QueryError(HslLiveError):
    """A query name is unknown or its SQL failed."""
