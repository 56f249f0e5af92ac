"""Resources chosen by environment variables, never by code edits; embedded defaults need no service.

Each use case has its own source, configured by variables named after it (`<NAME>` is the use
case's name in upper case: `RENTALS` for the bike use case):

| variable | default | |
| --- | --- | --- |
| `<NAME>_SOURCE` | `replay` | `landing` ingests arriving files instead of replaying the history |
| `<NAME>_REPLAY_CSV` | `data/<name>.csv` (bike: `data/bike_sharing_hourly.csv`) | the history replayed one day per partition |
| `<NAME>_LANDING_URL` | `LANDING_URL`, else `var/landing` | local folder or `s3://bucket/prefix` where `<spec file name>` files land |

File names start with the use case's name, so use cases may share one landing folder (`LANDING_URL`).
"""

import os

import dagster as dg

from ml.spec import UseCaseSpec
from ml.usecases import USE_CASES, replay_file
from resources.alerts import AlertSink
from resources.mlflow_tracking import MlflowResource
from resources.sources import REPLAY, UseCaseSource, UseCaseSources
from resources.storage import LocalStorage, S3Storage


def env(name: str, default: str | None) -> str | dg.EnvVar | None:
    """`dg.EnvVar(name)` when the variable is set (read by Dagster at run time), the default otherwise."""
    return dg.EnvVar(name) if os.getenv(name) else default


def use_case_source(spec: UseCaseSpec) -> UseCaseSource:
    prefix = spec.name.upper()
    return UseCaseSource(kind=env(f"{prefix}_SOURCE", REPLAY),
                         replay_csv=env(f"{prefix}_REPLAY_CSV", replay_file(spec)),
                         landing_url=env(f"{prefix}_LANDING_URL", env("LANDING_URL", "var/landing")))


def build_resources(specs: list[UseCaseSpec] | None = None) -> dict:
    """The resources of a code location serving `specs` (default: every registered use case).

    Secrets (the MLflow URI, which may carry a password; the webhook URL, which carries a token) are
    `dg.EnvVar`s, so only the variable's name enters job snapshots and the UI; the MLflow resource
    reads its EnvVar itself when the simulation calls it outside a run. Storage keeps plain values."""
    endpoint = os.getenv("AWS_ENDPOINT_URL")
    storage = (
        S3Storage(bucket=dg.EnvVar("LAKE_S3_BUCKET"), prefix=os.getenv("LAKE_S3_PREFIX", "lake"), endpoint_url=endpoint)
        if os.getenv("LAKE_S3_BUCKET")
        else LocalStorage(root=os.getenv("LAKE_ROOT", "var/lake"))
    )
    sources = UseCaseSources(use_cases={s.name: use_case_source(s) for s in (specs or USE_CASES.values())},
                             endpoint_url=env("AWS_ENDPOINT_URL", None))
    mlflow = MlflowResource(
        tracking_uri=env("MLFLOW_TRACKING_URI", "sqlite:///var/mlflow/mlflow.db"),
        artifact_root=os.getenv("MLFLOW_ARTIFACT_ROOT", "var/mlflow/artifacts"),
    )
    alerts = AlertSink(kind=os.getenv("ALERT_SINK", "log"), webhook_url=env("ALERT_WEBHOOK_URL", ""),
                       smtp_host=os.getenv("ALERT_SMTP_HOST", "localhost"), email_to=os.getenv("ALERT_EMAIL_TO", ""))
    return {"storage": storage, "source": sources, "landing": sources, "mlflow": mlflow, "alert_sink": alerts}
