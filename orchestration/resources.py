"""Resources chosen by environment variables, never by code edits; embedded defaults need no service."""

import os

import dagster as dg

from resources.alerts import AlertSink
from resources.mlflow_tracking import MlflowResource
from resources.sources import LandingSource, ReplaySource
from resources.storage import LocalStorage, S3Storage


def build_resources() -> dict:
    endpoint = os.getenv("AWS_ENDPOINT_URL")
    storage = (
        S3Storage(bucket=dg.EnvVar("LAKE_S3_BUCKET"), prefix=os.getenv("LAKE_S3_PREFIX", "lake"), endpoint_url=endpoint)
        if os.getenv("LAKE_S3_BUCKET")
        else LocalStorage(root=os.getenv("LAKE_ROOT", "var/lake"))
    )
    landing = LandingSource(url=os.getenv("LANDING_URL", "var/landing"), endpoint_url=endpoint)
    # RENTALS_SOURCE=landing ingests arriving files; the default replays the shipped history.
    source = landing if os.getenv("RENTALS_SOURCE") == "landing" else ReplaySource(
        csv_path=os.getenv("REPLAY_CSV", "data/bike_sharing_hourly.csv"))
    mlflow = MlflowResource(
        tracking_uri=os.getenv("MLFLOW_TRACKING_URI", "sqlite:///var/mlflow/mlflow.db"),
        artifact_root=os.getenv("MLFLOW_ARTIFACT_ROOT", "var/mlflow/artifacts"),
    )
    alerts = AlertSink(kind=os.getenv("ALERT_SINK", "log"), webhook_url=os.getenv("ALERT_WEBHOOK_URL", ""),
                       smtp_host=os.getenv("ALERT_SMTP_HOST", "localhost"), email_to=os.getenv("ALERT_EMAIL_TO", ""))
    return {"storage": storage, "source": source, "landing": landing, "mlflow": mlflow, "alert_sink": alerts}
