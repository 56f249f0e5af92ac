"""Data contracts and gates, wired as Dagster asset checks. Check logic lives in pure functions."""
