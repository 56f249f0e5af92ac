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


def resolved(resource: dg.ConfigurableResource) -> dg.ConfigurableResource:
    """The resource as a run sees it, its `dg.EnvVar` fields read: for code that calls it directly."""
    with dg.build_resources({"resource": resource}) as built:
        return built.resource


def use_case_source(spec: UseCaseSpec) -> UseCaseSource:
    prefix = spec.name.upper()
    return UseCaseSource(kind=env(f"{prefix}_SOURCE", REPLAY),
                         replay_csv=env(f"{prefix}_REPLAY_CSV", replay_file(spec)),
                         landing_url=env(f"{prefix}_LANDING_URL", env("LANDING_URL", "var/landing")))


def build_resources(specs: list[UseCaseSpec] | None = None) -> dict:
    """The resources of a code location serving `specs` (default: every registered use case).

    A variable that is set becomes a `dg.EnvVar`: only its name enters job snapshots and the UI (which
    matters for secrets: the MLflow URI may carry a password, the webhook URL a token, the e-mail
    addresses are personal), Dagster reads it when a run starts, and code that calls a resource
    outside a run reads it through `resolved` (the MLflow resource reads its own)."""
    storage = (
        S3Storage(bucket=dg.EnvVar("LAKE_S3_BUCKET"), prefix=env("LAKE_S3_PREFIX", "lake"),
                  endpoint_url=env("AWS_ENDPOINT_URL", None))
        if os.getenv("LAKE_S3_BUCKET")
        else LocalStorage(root=env("LAKE_ROOT", "var/lake"))
    )
    sources = UseCaseSources(use_cases={s.name: use_case_source(s) for s in (specs or USE_CASES.values())},
                             endpoint_url=env("AWS_ENDPOINT_URL", None))
    mlflow = MlflowResource(
        tracking_uri=env("MLFLOW_TRACKING_URI", "sqlite:///var/mlflow/mlflow.db"),
        artifact_root=env("MLFLOW_ARTIFACT_ROOT", "var/mlflow/artifacts"),
        ui_url=env("MLFLOW_UI_URL", ""),
    )
    alerts = AlertSink(kind=env("ALERT_SINK", "log"), webhook_url=env("ALERT_WEBHOOK_URL", ""),
                       smtp_host=env("ALERT_SMTP_HOST", "localhost"), email_to=env("ALERT_EMAIL_TO", ""))
    return {"storage": storage, "source": sources, "landing": sources, "mlflow": mlflow, "alert_sink": alerts}
