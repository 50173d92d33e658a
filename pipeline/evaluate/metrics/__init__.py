"""Evaluation metrics: the registry (``registry.METRICS``) and the pieces each metric is built from."""
