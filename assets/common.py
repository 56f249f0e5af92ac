"""What every stage shares: partitions, lake keys and metadata helpers."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from ml.spec import UseCaseSpec
from resources.mlflow_tracking import has_scheme
from resources.storage import Storage

OWNERS = {
    "data": "team:data-platform",
    "features": "team:features",
    "training": "team:ml-training",
    "serving": "team:ml-serving",
    "monitoring": "team:ml-monitoring",
}


# Every step that reads or writes the lake (`Storage`) or the registry (MLflow) retries a transient
# fault (S3 or MLflow away for a moment, after the client's own retries gave up): 3 more attempts,
# about 5, 15 and 35 s later (exponential, +/- 5 s of jitter so parallel steps do not retry in step).
# Deterministic failures are raised as `dg.Failure(allow_retries=False)` (see `fails_for_good`) and
# fail at once. Read through `retry_policy()` when a graph is built, so tests can patch it.
STEP_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# What a retry would only repeat: a broken data contract (`ContractViolation`), a spec error
# (`SpecError`), a window without enough data (`NotEnoughDays`) - all ValueErrors - and bad
# configuration or code. Transient faults are `StorageError`, OSError and MLflow's exceptions.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, TypeError)


def retry_policy() -> dg.RetryPolicy:
    """The retry policy of the steps that touch storage or the registry (`STEP_RETRY`)."""
    return STEP_RETRY


@contextmanager
def fails_for_good(*errors: type[BaseException]):
    """Raise `errors` (default `DETERMINISTIC_ERRORS`) as `dg.Failure(allow_retries=False)`: the step fails
    once with the error's own message instead of retrying what would fail the same way."""
    try:
        yield
    except (errors or DETERMINISTIC_ERRORS) as e:
        raise dg.Failure(description=str(e) or type(e).__name__, metadata={"error": type(e).__name__},
                         allow_retries=False) from e


def daily_partitions(spec: UseCaseSpec) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=spec.partition_start.isoformat(),
        end_date=(spec.partition_end + timedelta(days=1)).isoformat(),
    )


def table_key(spec: UseCaseSpec, stage: str, day: str) -> str:
    return f"{spec.name}/{stage}/{day}.parquet"


def stage_days(spec: UseCaseSpec, storage: Storage, stage: str) -> list[str]:
    """The days a stage holds a file for (`<name>/<stage>/<day>.<ext>`), sorted."""
    return sorted({k.rsplit("/", 1)[1].split(".")[0] for k in storage.list_keys(f"{spec.name}/{stage}/")})


def raw_pointer_key(spec: UseCaseSpec, day: str) -> str:
    """Raw blobs are immutable and content-addressed; this small JSON names the current one."""
    return f"{spec.name}/raw/{day}/current.json"


def raw_blob_key(spec: UseCaseSpec, day: str, sha256: str) -> str:
    return f"{spec.name}/raw/{day}/{sha256[:16]}.csv"


def data_docs_key(spec: UseCaseSpec, first_day: str, last_day: str) -> str:
    """The Data Docs page of one validation of the GX suite: a day, or the range a backfill validated."""
    return f"{spec.name}/data_docs/{first_day if first_day == last_day else f'{first_day}_{last_day}'}/index.html"


def lake_uri(storage: Storage, key: str) -> str:
    """A lake object as a URI a reader can follow: `s3://...` as the storage gives it, a local file as `file://`."""
    uri = storage.uri(key)
    return uri if has_scheme(uri) else Path(uri).as_uri()


_POLARS_TO_TYPE = {pl.Int64: "int", pl.Float64: "float", pl.Float32: "float", pl.Date: "date", pl.String: "string"}


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(name, _POLARS_TO_TYPE.get(dtype, str(dtype))) for name, dtype in frame.schema.items()
    ])


def markdown_table(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """A preview for the UI; polars' own markdown writer keeps us off tabulate."""
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=120):
        return dg.MetadataValue.md(str(frame.head(rows)))


def table_metadata(frame: pl.DataFrame) -> dict:
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": column_schema(frame),
        "preview": markdown_table(frame),
    }
