"""Adapters to the outside world: storage, data sources, MLflow, alert sinks."""
