"""What every stage shares: partitions, lake keys and metadata helpers."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import polars as pl

from ml.spec import UseCaseSpec

OWNERS = {
    "data": "team:data-platform",
    "features": "team:features",
    "training": "team:ml-training",
    "serving": "team:ml-serving",
    "monitoring": "team:ml-monitoring",
}


def daily_partitions(spec: UseCaseSpec) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=spec.partition_start.isoformat(),
        end_date=(spec.partition_end + timedelta(days=1)).isoformat(),
    )


def table_key(spec: UseCaseSpec, stage: str, day: str) -> str:
    return f"{spec.name}/{stage}/{day}.parquet"


def raw_pointer_key(spec: UseCaseSpec, day: str) -> str:
    """Raw blobs are immutable and content-addressed; this small JSON names the current one."""
    return f"{spec.name}/raw/{day}/current.json"


def raw_blob_key(spec: UseCaseSpec, day: str, sha256: str) -> str:
    return f"{spec.name}/raw/{day}/{sha256[:16]}.csv"


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
