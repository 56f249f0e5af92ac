"""Resources chosen by environment variables, never by code edits; embedded defaults need no service."""

from __future__ import annotations

import os

import dagster as dg

from resources.sources import LandingSource, ReplaySource
from resources.storage import LocalStorage, S3Storage


def build_resources() -> dict:
    storage = (
        S3Storage(bucket=dg.EnvVar("LAKE_S3_BUCKET"), prefix=os.getenv("LAKE_S3_PREFIX", "lake"),
                  endpoint_url=os.getenv("AWS_ENDPOINT_URL"))
        if os.getenv("LAKE_S3_BUCKET")
        else LocalStorage(root=os.getenv("LAKE_ROOT", "var/lake"))
    )
    source = (
        LandingSource(url=dg.EnvVar("LANDING_URL"), endpoint_url=os.getenv("AWS_ENDPOINT_URL"))
        if os.getenv("LANDING_URL")
        else ReplaySource(csv_path=os.getenv("REPLAY_CSV", "data/bike_sharing_hourly.csv"))
    )
    return {"storage": storage, "source": source}
