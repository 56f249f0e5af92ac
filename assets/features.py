"""rental_features: the one feature definition applied to each day of validated data."""

import dagster as dg
import polars as pl

from assets.common import OWNERS, daily_partitions, table_key, table_metadata
from ml.features import build_features
from ml.spec import UseCaseSpec
from resources.storage import Storage


def load_days(spec: UseCaseSpec, storage: Storage, stage: str, days: list[str]) -> pl.DataFrame:
    """Concatenate the stored daily tables of one stage; missing days are an error, not a gap."""
    missing = [d for d in days if not storage.exists(table_key(spec, stage, d))]
    if missing:
        raise FileNotFoundError(f"{stage} has no data for {len(missing)} day(s): {missing[:5]}...")
    return pl.concat([storage.read_parquet(table_key(spec, stage, d)) for d in days], how="vertical_relaxed")


def build_feature_assets(spec: UseCaseSpec) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=spec.asset("features"),
        deps=[f"validated_{spec.name}"],
        partitions_def=daily_partitions(spec),
        backfill_policy=dg.BackfillPolicy.single_run(),
        owners=[OWNERS["features"]],
        group_name="features",
        kinds={"polars", "parquet"},
    )
    def features(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
        """Model inputs per day, from `ml.features` — the same code the scorer calls."""
        frames = []
        for day in context.partition_keys:
            frame = build_features(spec, storage.read_parquet(table_key(spec, "validated", day)))
            storage.write_parquet(table_key(spec, "features", day), frame)
            frames.append(frame)
        return dg.MaterializeResult(metadata=table_metadata(pl.concat(frames)))

    return [features]
