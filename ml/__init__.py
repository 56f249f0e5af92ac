"""Dagster-free logic of the ML system: specs, contracts, features, models, drift."""
