"""Ingestion against a real S3-compatible HTTP server on loopback, through boto3."""

import dagster as dg
import pytest

from assets.common import raw_pointer_key, table_key
from orchestration.sensors import build_landing_sensor
from orchestration.definitions import build_use_case
from resources.mlflow_tracking import MlflowResource
from resources.sources import LandingSource
from resources.storage import S3Storage, StorageError
from tests.dagster.helpers import materialize_days
from tests.dagster.test_ingestion_assets import INGEST


@pytest.mark.integration
def test_landing_on_s3_to_validated_on_s3(spec, june_first, s3_server, s3_bucket):
    landing = S3Storage(bucket=s3_bucket, prefix="landing", endpoint_url=s3_server)
    lake = S3Storage(bucket=s3_bucket, prefix="lake", endpoint_url=s3_server)
    landing.write_bytes("rentals_2011-06-01.csv", june_first)
    source = LandingSource(url=f"s3://{s3_bucket}/landing", endpoint_url=s3_server)

    result = materialize_days(spec, {"storage": lake, "source": source}, "2011-06-01", selection=INGEST)
    assert result.success
    pointer = lake.read_json(raw_pointer_key(spec, "2011-06-01"))
    assert lake.read_bytes(pointer["key"]) == june_first
    assert lake.read_parquet(table_key(spec, "validated", "2011-06-01")).height == 24
    keys = lake.list_keys(f"{spec.name}/")
    # raw blob + pointer, validated, quarantined, merged, the day's Data Docs page and the site's index:
    # nothing half-written left behind
    assert all(not k.endswith(".tmp") for k in keys) and len(keys) == 7
    assert {"rentals/data_docs/2011-06-01/index.html", "rentals/data_docs/index.html"} <= set(keys)


@pytest.mark.integration
def test_landing_sensor_requests_one_run_per_landed_file(spec, june_first, s3_server, s3_bucket, tmp_path):
    S3Storage(bucket=s3_bucket, prefix="in", endpoint_url=s3_server).write_bytes("rentals_2011-06-01.csv", june_first)
    S3Storage(bucket=s3_bucket, prefix="in", endpoint_url=s3_server).write_bytes("notes.txt", b"not data")
    jobs = {j.name: j for j in build_use_case(spec).jobs}
    sensor = build_landing_sensor(spec, jobs["daily_rentals"], jobs["ingest_rentals"])
    landing = LandingSource(url=f"s3://{s3_bucket}/in", endpoint_url=s3_server)
    resources = {"landing": landing, "storage": S3Storage(bucket=s3_bucket, prefix="lake", endpoint_url=s3_server),
                 "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                                          artifact_root=str(tmp_path / "artifacts"))}
    with dg.build_sensor_context(resources=resources) as context:
        requests = list(sensor(context))
    assert [r.partition_key for r in requests] == ["2011-06-01"]
    assert requests[0].run_key.startswith("rentals_2011-06-01.csv:")
    # A corrected file (new content, new ETag) gets a new run key, so it is ingested again.
    S3Storage(bucket=s3_bucket, prefix="in", endpoint_url=s3_server).write_bytes("rentals_2011-06-01.csv",
                                                                               june_first + b"\n")
    with dg.build_sensor_context(resources=resources) as context:
        again = list(sensor(context))
    assert again[0].run_key != requests[0].run_key


@pytest.mark.integration
def test_s3_down_is_retried_then_a_clear_error_naming_bucket_and_key_and_works_once_back(monkeypatch):
    """Our own moto server, stopped and restarted on the same port (the shared one must stay up)."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from tests.integration.conftest import _free_port, start_moto

    port = _free_port()
    server = start_moto(port)
    url = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="lake")
    lake = S3Storage(bucket="lake", prefix="lake", endpoint_url=url, max_attempts=3, timeout_s=2)
    lake.write_bytes("rentals/a.json", b"{}")
    server.kill()
    server.wait(10)
    with pytest.raises(StorageError) as down:
        lake.read_bytes("rentals/a.json")
    message = str(down.value)
    assert "bucket 'lake'" in message and "key 'lake/rentals/a.json'" in message and "3 attempts" in message
    server = start_moto(port)  # moto keeps nothing: a restarted server is an empty one
    try:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="lake")
        lake.write_bytes("rentals/a.json", b"{}")
        assert lake.read_bytes("rentals/a.json") == b"{}"
    finally:
        server.kill()
        server.wait(10)
