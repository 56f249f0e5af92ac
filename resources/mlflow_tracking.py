"""MLflow tracking and registry as a Dagster resource (not the legacy dagster-mlflow resource).

The embedded default is a local SQLite store with artifacts in a local folder; production points
MLFLOW_TRACKING_URI at a tracking server (PostgreSQL backend, S3 artifacts). Models are registered
as ONNX: the registry holds exactly what serving loads, never a pickle.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

CHAMPION, CHALLENGER = "champion", "challenger"


def code_version() -> str:
    """The git commit of the running code (GIT_COMMIT wins, e.g. in a container without .git)."""
    if os.getenv("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class RegisteredVersion:
    """A registry version as the pipeline uses it; versions are strings everywhere (tags, keys, JSON)."""

    version: str
    run_id: str


class MlflowResource(dg.ConfigurableResource):
    tracking_uri: str = "sqlite:///var/mlflow/mlflow.db"
    artifact_root: str = "var/mlflow/artifacts"
    experiment: str = "default"  # runs of a use case go to the experiment named after it

    def _artifact_location(self) -> str:
        if "://" in self.artifact_root:
            return self.artifact_root
        return Path(self.artifact_root).resolve().as_uri()

    def client(self):
        import mlflow
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return MlflowClient(self.tracking_uri, self.tracking_uri)

    @contextmanager
    def start_run(self, run_name: str, tags: dict | None = None, nested: bool = False, experiment: str | None = None):
        """A run in `experiment` (one per use case; the resource's default otherwise)."""
        import mlflow

        if not nested:  # a nested run lives in its parent's experiment
            client, experiment = self.client(), experiment or self.experiment
            if client.get_experiment_by_name(experiment) is None:
                client.create_experiment(experiment, artifact_location=self._artifact_location())
            mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=run_name, nested=nested,
                              tags={"code_version": code_version(), **(tags or {})}) as run:
            yield run

    def log_onnx_model(self, model_name: str, onnx_bytes: bytes, input_example, tags: dict) -> str:
        """Log and register the ONNX model in the active run; returns the new version number."""
        import mlflow
        import onnx
        from mlflow.models import infer_signature

        model = onnx.load_from_string(onnx_bytes)
        info = mlflow.onnx.log_model(
            model, name="model", registered_model_name=model_name, input_example=input_example,
            signature=infer_signature(input_example), save_as_external_data=False,
            onnx_execution_providers=["CPUExecutionProvider"],
        )
        version = str(info.registered_model_version)
        client = self.client()
        for k, v in tags.items():
            client.set_model_version_tag(model_name, version, k, str(v))
        return version

    def version_by_alias(self, model_name: str, alias: str) -> RegisteredVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client().get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None
        return RegisteredVersion(str(mv.version), mv.run_id)

    def set_alias(self, model_name: str, alias: str, version: str, evidence: dict) -> None:
        """Move an alias and leave the evidence on the version, so the registry is the audit trail."""
        client = self.client()
        client.set_registered_model_alias(model_name, alias, version)
        for k, v in evidence.items():
            client.set_model_version_tag(model_name, version, f"{alias}.{k}", str(v)[:5000])

    def load_onnx(self, model_name: str, version: str) -> bytes:
        import mlflow

        self.client()
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name}/{version}", dst_path=tmp)
            return (Path(path) / "model.onnx").read_bytes()

    def log_bytes(self, payload: bytes, artifact_path: str) -> None:
        """Log raw bytes (e.g. a second ONNX graph) as an artifact of the active run."""
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / artifact_path
            path.write_bytes(payload)
            mlflow.log_artifact(str(path))

    def load_run_artifact(self, run_id: str, artifact_path: str) -> bytes:
        import mlflow

        self.client()
        with tempfile.TemporaryDirectory() as tmp:
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                            dst_path=tmp)).read_bytes()

    def run_url(self, run_id: str) -> str:
        """A link for asset metadata: the UI when a server is configured, the run id otherwise."""
        ui = os.getenv("MLFLOW_UI_URL")
        if ui:
            experiment = self.client().get_run(run_id).info.experiment_id
            return f"{ui.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
        return f"mlflow run {run_id} ({self.tracking_uri})"
