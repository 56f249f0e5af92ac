"""Credentials never leave the MLflow resource in what it returns for display (metadata, logs)."""

import dagster as dg
import pytest

from resources.mlflow_tracking import MlflowResource, redact_uri, split_credentials


@pytest.mark.parametrize("uri, shown", [
    ("http://user:s3cr3t@mlflow.internal:5000", "http://mlflow.internal:5000"),
    ("https://user:s3cr3t@mlflow.example.com/prefix/#/experiments/1", "https://mlflow.example.com/prefix/#/experiments/1"),
    ("https://token-only@mlflow.example.com", "https://mlflow.example.com"),
    ("https://user:p%40ss@host", "https://host"),  # percent-encoded, as RFC 3986 wants
    ("https://user:p@ss:w@rd@host:443/x", "https://host:443/x"),  # an unencoded "@" in the password
    ("postgresql://mlflow:s3cr3t@db.internal:5432/mlflow", "postgresql://db.internal:5432/mlflow"),
    ("postgresql://db/mlflow?user=mlflow&password=s3cr3t&sslmode=require",
     "postgresql://db/mlflow?user=mlflow&password=***&sslmode=require"),
    ("https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=abc&X-Amz-Expires=300",
     "https://bucket.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=300"),
    ("https://acct.blob.core.windows.net/c/b?sv=2024&sig=abc", "https://acct.blob.core.windows.net/c/b?sv=2024&sig=***"),
    ("http://h/?access_token=abc#frag", "http://h/?access_token=***#frag"),
])
def test_credentials_are_stripped(uri, shown):
    assert redact_uri(uri) == shown


@pytest.mark.parametrize("uri", [
    "sqlite:///var/mlflow/mlflow.db", "sqlite:////abs/path/mlflow.db", "http://127.0.0.1:5000",
    "https://mlflow.example.com/#/experiments/1/runs/abc", "databricks", "file:///tmp/mlruns",
    "s3://bucket/mlflow", "mlflow-artifacts:/1", "models:/rental_model@champion", "var/mlflow/artifacts",
    "mailto:someone@example.com",  # not scheme://, so no userinfo to strip
])
def test_uris_without_credentials_are_unchanged(uri):
    assert redact_uri(uri) == uri


def test_uris_inside_a_text_are_redacted_too():
    text = "mlflow run abc (http://u:s3cr3t@h:5000) failed; retry http://v:other@g/api?token=t1 later"
    assert redact_uri(text) == "mlflow run abc (http://h:5000) failed; retry http://g/api?token=*** later"


def test_without_a_ui_links_are_texts_naming_the_store_without_credentials():
    mlflow = MlflowResource(tracking_uri="https://dagster:s3cr3t@mlflow.internal")
    assert mlflow.run_link("abc123") == dg.MetadataValue.text("mlflow run abc123 (https://mlflow.internal)")
    assert mlflow.model_version_link("rental_model", "3") == dg.MetadataValue.text(
        "models:/rental_model/3 (https://mlflow.internal)")
    assert mlflow.display_uri == "https://mlflow.internal" and mlflow.uri.startswith("https://dagster:s3cr3t@")


def test_with_a_ui_runs_and_versions_link_to_their_pages(tmp_path, monkeypatch):
    """The UI address is a dg.EnvVar (only its name in the definitions), read when the link is made."""
    from mlflow import MlflowClient

    monkeypatch.setenv("SOME_UI_URL", "https://ops:s3cr3t@mlflow.example.com/")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("rentals", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    mlflow = MlflowResource(tracking_uri=uri, ui_url=dg.EnvVar("SOME_UI_URL"))
    assert mlflow.run_link(run.info.run_id) == dg.MetadataValue.url(
        f"https://mlflow.example.com/#/experiments/{experiment}/runs/{run.info.run_id}")
    assert mlflow.model_version_link("rental_model", "3") == dg.MetadataValue.url(
        "https://mlflow.example.com/#/models/rental_model/versions/3")
    # Not an http(s) address: no link to follow, the text instead.
    assert isinstance(MlflowResource(tracking_uri=uri, ui_url="mlflow.example.com").run_link(run.info.run_id),
                      dg.TextMetadataValue)


def test_an_env_var_tracking_uri_is_read_when_called_outside_a_run(monkeypatch):
    """Inside a run Dagster resolves the dg.EnvVar; direct calls (sensors' helpers, the simulation)
    read it from the environment, and the secret never sits in the definitions."""
    monkeypatch.setenv("SOME_TRACKING_URI", "http://u:s3cr3t@127.0.0.1:5000")
    mlflow = MlflowResource(tracking_uri=dg.EnvVar("SOME_TRACKING_URI"))
    assert mlflow.uri == "http://u:s3cr3t@127.0.0.1:5000" and mlflow.display_uri == "http://127.0.0.1:5000"


@pytest.mark.parametrize("tracking, root, location", [
    ("sqlite:///x.db", "s3://bucket/mlflow", "s3://bucket/mlflow"),
    ("http://h:5000", "s3://bucket/mlflow", "s3://bucket/mlflow"),  # direct to S3: the client needs S3 creds
    ("http://h:5000", "mlflow-artifacts:/rentals", "mlflow-artifacts:/rentals"),
    ("http://h:5000", "var/mlflow/artifacts", None),  # a local folder means nothing to the server
    ("https://h", "", None),
    ("sqlite:///x.db", "", None),
])
def test_artifact_location_of_new_experiments(tracking, root, location):
    assert MlflowResource(tracking_uri=tracking, artifact_root=root)._artifact_location() == location


def test_a_local_store_keeps_a_local_artifact_folder(tmp_path):
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/m.db", artifact_root=str(tmp_path / "art"))
    assert mlflow._artifact_location() == (tmp_path / "art").as_uri()


@pytest.mark.parametrize("uri, split", [
    ("http://dagster:s3cr3t@127.0.0.1:5000", ("http://127.0.0.1:5000", "dagster", "s3cr3t")),
    ("https://me%40corp:p%3Ass%2Fw@mlflow.example.com/prefix", ("https://mlflow.example.com/prefix", "me@corp", "p:ss/w")),
    ("https://user:p@ss@host", ("https://host", "user", "p@ss")),
    ("https://host:8443", ("https://host:8443", None, None)),
    ("postgresql://u:p@db/mlflow", ("postgresql://u:p@db/mlflow", None, None)),  # its driver needs them
    ("sqlite:///var/mlflow/mlflow.db", ("sqlite:///var/mlflow/mlflow.db", None, None)),
])
def test_split_credentials(uri, split):
    assert split_credentials(uri) == split


def test_mlflow_gets_the_server_uri_without_credentials_and_them_as_basic_auth(monkeypatch):
    """So MLflow's own messages ("API request to <url> failed", "View run at <url>") never hold them."""
    import mlflow
    from mlflow.utils.credentials import read_mlflow_creds

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "before")
        monkeypatch.delenv(name)  # restored to unset after the test, whatever the resource sets
    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: None)  # keep the process's store as is
    monkeypatch.setattr(mlflow, "set_registry_uri", lambda uri: None)
    client = MlflowResource(tracking_uri="http://dagster:s3cr3t%21@127.0.0.1:5000").client()
    assert client.tracking_uri == "http://127.0.0.1:5000" and client._registry_uri == "http://127.0.0.1:5000"
    creds = read_mlflow_creds()
    assert (creds.username, creds.password) == ("dagster", "s3cr3t!")
