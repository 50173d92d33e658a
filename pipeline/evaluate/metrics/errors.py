"""Why a metric has no value (missing weights, an unconditional model): reported, never replaced by 0."""


class MetricUnavailable(Exception):
    """The metric cannot be computed here; the message is the reason shown in metrics and the report."""
