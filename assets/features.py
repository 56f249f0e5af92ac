"""<entity>_features: the one feature definition applied to each day of validated data."""

import dagster as dg
import polars as pl

from assets.common import (OWNERS, daily_partitions, fails_for_good, raw_pointer_key, retry_policy, table_key,
                           table_metadata)
from assets.ingestion import is_gap
from ml.features import build_features
from ml.spec import UseCaseSpec
from resources.storage import Storage


class NotEnoughDays(ValueError):
    """Too few days of a window have data to use it."""


def present_days(spec: UseCaseSpec, storage: Storage, stage: str, days: list[str]) -> tuple[list[str], list[str]]:
    """The days with a stored table of `stage`, and the days without one (gaps), each in order."""
    present = [d for d in days if storage.exists(table_key(spec, stage, d))]
    return present, [d for d in days if d not in set(present)]


def load_days(spec: UseCaseSpec, storage: Storage, stage: str, days: list[str], min_share: float = 1.0) -> pl.DataFrame:
    """The stored daily tables of one stage for the days present; gaps are passed over while at least
    `min_share` of `days` is present (1.0: every day must be). `present_days` tells which are missing."""
    present, missing = present_days(spec, storage, stage, days)
    if not present or len(present) < min_share * len(days):
        raise NotEnoughDays(f"{stage}: {len(present)} of {len(days)} day(s) have data ({days[0]}..{days[-1]}), "
                            f"{min_share:.0%} needed; missing: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    return pl.concat([storage.read_parquet(table_key(spec, stage, d)) for d in present], how="vertical_relaxed")


def build_feature_assets(spec: UseCaseSpec) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=spec.asset("features"),
        deps=[f"validated_{spec.name}"],
        partitions_def=daily_partitions(spec),
        backfill_policy=dg.BackfillPolicy.single_run(),
        owners=[OWNERS["features"]],
        group_name="features",
        kinds={"polars", "parquet"},
        retry_policy=retry_policy(),
    )
    def features(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
        """Model inputs per day, from `ml.features` — the same code the scorer calls."""
        frames, gaps = [], []
        for day in context.partition_keys:
            if is_gap(storage.read_json(raw_pointer_key(spec, day))):
                gaps.append(day)  # no file that day: no rows, nothing to build
                continue
            validated = storage.read_parquet(table_key(spec, "validated", day))
            with fails_for_good():  # the spec's feature definition does not fit the data: no retry
                frame = build_features(spec, validated)
            storage.write_parquet(table_key(spec, "features", day), frame)
            frames.append(frame)
        gap_metadata = {"no_data": not frames, "no_data_days": gaps} if gaps else {}
        return dg.MaterializeResult(metadata={**(table_metadata(pl.concat(frames)) if frames else {}), **gap_metadata})

    return [features]
