"""MLflow tracking and registry as a Dagster resource (not the legacy dagster-mlflow resource).

The embedded default is a local SQLite store with artifacts in a local folder; production points
MLFLOW_TRACKING_URI at a tracking server (PostgreSQL backend, S3 artifacts served through the server,
so Dagster's workers need no credentials for the model bucket). Models are registered as ONNX: the
registry holds exactly what serving loads, never a pickle.

A server's URI may carry credentials (`https://user:password@host`). MLflow itself would then print
them ("View run ... at"), and put them in the message of every failed request ("API request to
https://user:password@host/api/... failed"), which Dagster stores in its event log. So the resource
hands MLflow the URI without them and passes them through MLflow's own MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD (setting those directly, or MLFLOW_TRACKING_TOKEN, works too); and anything it
returns for display goes through `redact_uri`.

Several processes use one registry at once (two retrains, a retrain and a promotion): creating the
experiment and the registered model is get-or-create, and a create that loses the race to another process
("already exists") counts as success (`get_or_create`). The store's schema is not created here on
purpose: see `MlflowResource.client`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import dagster as dg
from pydantic import Field

from ml.heavy import heavy_import
from resources.failpoints import failpoint

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


# `scheme://user:password@` (the userinfo runs to the last "@" before the path, so an unencoded "@"
# in a password is still removed) and the values of query parameters that name a secret.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_SECRET_PARAM = re.compile(
    r"([?&;](?:[^=&;#\s]*(?:pass|pwd|token|secret|signature|credential|api[_-]?key|access[_-]?key)[^=&;#\s]*"
    r"|sig)=)[^&;#\s]*", re.IGNORECASE)
REDACTED = "***"


def redact_uri(uri: str) -> str:
    """`uri` (or a text holding URIs) fit for logs, metadata and UIs: `user:password@` is dropped and
    secret-looking query values (`?password=`, `?token=`, `X-Amz-Signature=`, ...) become `***`."""
    return _SECRET_PARAM.sub(rf"\1{REDACTED}", _USERINFO.sub(r"\1", uri))


def _resolved(value: str) -> str:
    """A field's value; a `dg.EnvVar` read now (Dagster resolves it inside runs, not in direct calls)."""
    return value.get_value("") if isinstance(value, dg.EnvVar) else value


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """`(uri without user:password@, user, password)` of an http(s) URI, percent-decoded; other URIs
    (a database's, whose driver needs them) are returned whole, with no credentials."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return uri, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), unquote(user), unquote(password)


def has_scheme(location: str) -> bool:
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", location) is not None  # "C:" is a drive, not a scheme


_ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


def already_exists(error: BaseException) -> bool:
    """Whether a create failed because the thing is already there. MLflow says RESOURCE_ALREADY_EXISTS (its
    SQL store turns the unique-constraint violation into that code, a server sends it); a store that lets
    the database's IntegrityError through, or wraps it in another MlflowException, is recognised by it."""
    if getattr(error, "error_code", None) in _ALREADY_EXISTS:
        return True
    seen = set()
    while error is not None and id(error) not in seen:
        if type(error).__name__ == "IntegrityError":  # sqlalchemy's (psycopg2's UniqueViolation, sqlite3's)
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def get_or_create(get, create):
    """`get()` when it finds something, else `create()`. Another process may create the same thing between
    our read and our create (two retrains on a new registry both read "no experiment"): the loser's create
    fails with "already exists", which is success here, so read again what the winner created."""
    found = get()
    if found is not None:
        return found
    try:
        return create()
    except Exception as error:
        if not already_exists(error):
            raise
        found = get()
        if found is None:
            raise
        return found


def get_or_create_experiment(client, name: str, artifact_location: str | None = None) -> str:
    """The id of the experiment `name`, created if missing (safe when several processes do it at once)."""
    def get():
        experiment = client.get_experiment_by_name(name)
        return None if experiment is None else experiment.experiment_id

    return get_or_create(get, lambda: client.create_experiment(name, artifact_location=artifact_location))


def get_or_create_registered_model(client, name: str):
    """The registered model `name`, created if missing (safe when several processes do it at once)."""
    from mlflow.exceptions import MlflowException

    def get():
        try:
            return client.get_registered_model(name)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    return get_or_create(get, lambda: client.create_registered_model(name))


def column_signature(feature_names: list[str], output: str = "prediction"):
    """An MLflow signature naming each input column (float32, as the ONNX graph takes them) and the output.

    The ONNX graph itself has one input tensor [rows, n]; MLflow's pyfunc for ONNX feeds a DataFrame's
    values to a single-input graph in column order, so the columns of this signature, in this order, are
    exactly what the tensor holds."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("float", name) for name in feature_names]),
                          outputs=Schema([ColSpec("float", output)]))


def feature_frame(rows, feature_names: list[str], model=None):
    """`rows` (a 2-D array in feature order) as a float32 DataFrame with the feature names as columns; with
    the ONNX `model`, first checks that it takes one tensor of exactly that many columns."""
    import numpy as np
    import pandas as pd

    if model is not None:
        inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        dims = inputs[0].type.tensor_type.shape.dim if len(inputs) == 1 else []
        width = dims[-1].dim_value if len(dims) == 2 else None
        if width != len(feature_names):
            raise ValueError(f"the ONNX graph takes {[i.name for i in inputs]} (width {width}), not one tensor "
                             f"of the {len(feature_names)} named features")
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != len(feature_names):
        raise ValueError(f"input example of shape {rows.shape} for {len(feature_names)} named features")
    return pd.DataFrame(rows, columns=list(feature_names))


def replace_section(description: str, heading: str, text: str) -> str:
    """`description` with its `## heading` section set to `text` (added at the end if missing); the text
    before the first heading is the section named "" (the registration's)."""
    sections: dict[str, str] = {}
    for i, part in enumerate(re.split(r"(?m)^## ", description)):
        if i == 0:
            sections[""] = part.strip()
        else:
            title, _, body = part.partition("\n")
            sections[title.strip()] = body.strip()
    sections[heading] = text.strip()
    return "\n\n".join(body if not title else f"## {title}\n{body}" for title, body in sections.items()
                         if body or title).strip()


@dataclass(frozen=True)
class RegisteredVersion:
    """A registry version as the pipeline uses it; versions are strings everywhere (tags, keys, JSON)."""

    version: str
    run_id: str


class MlflowResource(dg.ConfigurableResource):
    tracking_uri: str = Field(
        default="sqlite:///var/mlflow/mlflow.db",
        description="Tracking and registry store: a local `sqlite:///` file or a server's `http(s)://` URL. "
                    "Pass a secret-bearing URI as a dg.EnvVar, so its value never enters the definitions.")
    artifact_root: str = Field(
        default="var/mlflow/artifacts",
        description="Artifact location of new experiments: a URI (`s3://...`, `mlflow-artifacts:/...`) is used "
                    "as is; a local folder only with a local store (a server keeps its own default), or '' "
                    "for the store's default.")
    ui_url: str = Field(
        default="",
        description="The MLflow UI's address (`http(s)://...`): asset metadata then links to run and model "
                    "version pages; empty: the run id and the store as text.")
    experiment: str = "default"  # runs of a use case go to the experiment named after it

    @property
    def uri(self) -> str:
        """The tracking URI in effect (credentials included: never display it, see `display_uri`)."""
        return _resolved(self.tracking_uri)

    @property
    def display_uri(self) -> str:
        return redact_uri(self.uri)

    def _artifact_location(self) -> str | None:
        """None lets the store choose: behind a server, `mlflow-artifacts:/<experiment id>`, which the
        server proxies to its `--artifacts-destination`. A folder on this machine means nothing to a
        server or to the other machines that read the registry, so it is only used with a local store."""
        root = _resolved(self.artifact_root)
        if has_scheme(root):
            return root
        if not root or self.uri.split(":", 1)[0].lower() in ("http", "https", "databricks"):
            return None
        return Path(root).resolve().as_uri()

    def client(self):
        """A client, with this store made MLflow's current one (for `mlflow.log_*` in the active run).

        MLflow creates a database store's schema when the first client finds the database empty. That is
        not safe when two processes are first at once: on PostgreSQL one of them fails in `create_all`
        ("duplicate key value violates unique constraint pg_type_typname_nsp_index") or in alembic, and
        retrying is no cure (the retry sees the tables and fails the schema check while the other process
        is still migrating). So the schema is the deployment's, not the runs': in production the tracking
        server creates and migrates it before any run talks to it (`mlflow server`, `mlflow db upgrade`),
        and whoever points runs straight at a fresh database creates it first, once (as the concurrent
        retrains test does). Experiments and registered models, which runs do create, are get-or-create
        (`get_or_create`)."""
        mlflow = heavy_import("mlflow")

        uri, user, password = split_credentials(self.uri)
        if user is not None:  # MLflow sends them as basic auth on every request to the server
            os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user, password
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return mlflow.MlflowClient(uri, uri)

    @contextmanager
    def start_run(self, run_name: str, tags: dict | None = None, nested: bool = False, experiment: str | None = None):
        """A run in `experiment` (one per use case; the resource's default otherwise)."""
        mlflow = heavy_import("mlflow")

        if not nested:  # a nested run lives in its parent's experiment
            experiment_id = get_or_create_experiment(self.client(), experiment or self.experiment,
                                                     self._artifact_location())
            mlflow.set_experiment(experiment_id=experiment_id)
        with mlflow.start_run(run_name=run_name, nested=nested,
                              tags={"code_version": code_version(), **(tags or {})}) as run:
            yield run

    def log_onnx_model(self, model_name: str, onnx_bytes: bytes, input_example, tags: dict, *,
                       feature_names: list[str] | None = None, logged_model_name: str = "model",
                       description: str | None = None) -> str:
        """Log and register the ONNX model in the active run; returns the new version number.

        With `feature_names` the signature names every input column (`column_signature`) and the input
        example becomes a table with those columns; the ONNX graph is logged unchanged (one float tensor
        [rows, n], the columns in that order), so what serving loads is the same bytes. `logged_model_name`
        is the LoggedModel's name in MLflow 3 (e.g. `rentals-trees`): a display name, not a path: the
        model's files stay at the root of its artifacts, where `load_onnx` reads them."""
        mlflow = heavy_import("mlflow")
        import onnx
        from mlflow.models import infer_signature

        failpoint("before_register", model_name)  # crash tests: run logged, no version yet
        model = onnx.load_from_string(onnx_bytes)
        if feature_names is None:
            signature = infer_signature(input_example)
        else:
            input_example = feature_frame(input_example, feature_names, model)
            signature = column_signature(feature_names, model.graph.output[0].name)
        client = self.client()
        # Created here, race-safe, rather than left to log_model (which happens to tolerate the race too).
        get_or_create_registered_model(client, model_name)
        with warnings.catch_warnings():  # MLflow's own check of a DataFrame example trips a pandas deprecation
            warnings.filterwarnings("ignore", message="Operation with range is deprecated")
            info = mlflow.onnx.log_model(
                model, name=logged_model_name, registered_model_name=model_name, input_example=input_example,
                signature=signature, save_as_external_data=False,
                onnx_execution_providers=["CPUExecutionProvider"],
            )
        version = str(info.registered_model_version)
        for k, v in tags.items():
            client.set_model_version_tag(model_name, version, k, str(v))
        if description is not None:
            client.update_model_version(model_name, version, description=description)
        return version

    def describe_model(self, model_name: str, description: str) -> None:
        """The registered model's page text (what it predicts, how versions get promoted)."""
        client = self.client()
        if (client.get_registered_model(model_name).description or "") != description:
            client.update_registered_model(model_name, description=description)

    def describe_version(self, model_name: str, version: str, heading: str, text: str) -> None:
        """Write the section `heading` of a version's description (`## heading`), replacing that section if
        it is there and keeping the others: registration, gate and promotion each own one, so a re-run of
        a step rewrites its own section instead of appending a second copy."""
        client = self.client()
        current = client.get_model_version(model_name, version).description or ""
        updated = replace_section(current, heading, text)
        if updated != current:
            client.update_model_version(model_name, version, description=updated)

    def version_by_alias(self, model_name: str, alias: str) -> RegisteredVersion | None:
        client = self.client()
        from mlflow.exceptions import MlflowException

        try:
            mv = client.get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None
        return RegisteredVersion(str(mv.version), mv.run_id)

    def set_alias(self, model_name: str, alias: str, version: str, evidence: dict) -> None:
        """Leave the evidence on the version, then move the alias: the registry is the audit trail, and a
        process killed in between leaves the alias where it was, never on a version without its evidence
        (the registry has no transaction across calls; the alias move is the single commit point)."""
        client = self.client()
        for k, v in evidence.items():
            client.set_model_version_tag(model_name, version, f"{alias}.{k}", str(v)[:5000])
        failpoint("before_alias_move", alias)  # crash tests: evidence on the version, alias not moved
        client.set_registered_model_alias(model_name, alias, version)

    def load_onnx(self, model_name: str, version: str) -> bytes:
        mlflow = heavy_import("mlflow")

        self.client()
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name}/{version}", dst_path=tmp)
            return (Path(path) / "model.onnx").read_bytes()

    def log_bytes(self, payload: bytes, artifact_path: str) -> None:
        """Log raw bytes (e.g. a second ONNX graph) as an artifact of the active run."""
        mlflow = heavy_import("mlflow")

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / artifact_path
            path.write_bytes(payload)
            mlflow.log_artifact(str(path))

    def load_run_artifact(self, run_id: str, artifact_path: str) -> bytes:
        mlflow = heavy_import("mlflow")

        self.client()
        with tempfile.TemporaryDirectory() as tmp:
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                            dst_path=tmp)).read_bytes()

    def _ui(self) -> str | None:
        ui = _resolved(self.ui_url).strip()
        return redact_uri(ui.rstrip("/")) if ui.lower().startswith(("http://", "https://")) else None

    def run_link(self, run_id: str) -> dg.MetadataValue:
        """The run for asset metadata, never with credentials: a link to its page in the UI when
        `ui_url` is set, the run id and the store as text otherwise."""
        ui = self._ui()
        if ui:
            experiment = self.client().get_run(run_id).info.experiment_id
            return dg.MetadataValue.url(f"{ui}/#/experiments/{experiment}/runs/{run_id}")
        return dg.MetadataValue.text(f"mlflow run {run_id} ({self.display_uri})")

    def model_version_link(self, name: str, version: str) -> dg.MetadataValue:
        """A registered version for asset metadata: its page in the UI, or its `models:/` URI as text."""
        ui = self._ui()
        if ui:
            return dg.MetadataValue.url(f"{ui}/#/models/{name}/versions/{version}")
        return dg.MetadataValue.text(f"models:/{name}/{version} ({self.display_uri})")
