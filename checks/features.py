"""Feature contract (blocking) and the training/serving skew check."""

import dagster as dg
import polars as pl

from assets.common import daily_partitions, retry_policy, table_key
from assets.features import load_days, present_days
from ml.contract import labels_pending_rows
from ml.features import feature_contract_violations, skew
from ml.scoring import scoring_features
from ml.spec import UseCaseSpec
from resources.storage import Storage


def build_feature_checks(spec: UseCaseSpec) -> list[dg.AssetChecksDefinition]:
    features_key = spec.asset("features")
    partitions = daily_partitions(spec)

    @dg.asset_check(asset=features_key, name="feature_contract", blocking=True, partitions_def=partitions,
                    description="No leakage column among inputs, every feature present, no nulls, values in range; "
                                "the target may be null (labels pending).", retry_policy=retry_policy())
    def feature_contract(context: dg.AssetCheckExecutionContext, storage: Storage) -> dg.AssetCheckResult:
        days = present_days(spec, storage, "features", list(context.partition_keys))[0]
        if not days:
            return dg.AssetCheckResult(passed=True, description="no data: no features for these days (gaps)")
        frame = load_days(spec, storage, "features", days)
        problems = feature_contract_violations(spec, frame)
        pending = labels_pending_rows(spec, frame)
        return dg.AssetCheckResult(
            passed=not problems,
            description="; ".join(problems[:10])
            or f"{frame.width} columns, {frame.height} rows within contract ({pending} with labels pending)",
            metadata={"problems": len(problems), "rows": frame.height, "labels_pending_rows": pending},
        )

    @dg.asset_check(asset=features_key, name="training_serving_skew", partitions_def=partitions,
                    description="Features recomputed through the scoring path equal the stored training features.",
                    retry_policy=retry_policy())
    def training_serving_skew(context: dg.AssetCheckExecutionContext, storage: Storage) -> dg.AssetCheckResult:
        days = present_days(spec, storage, "features", list(context.partition_keys))[0]
        if not days:
            return dg.AssetCheckResult(passed=True, description="no data: no features for these days (gaps)")
        stored = load_days(spec, storage, "features", days)
        recomputed = pl.concat([scoring_features(spec, storage.read_parquet(table_key(spec, "validated", d)))
                                for d in days])
        diffs = skew(stored, recomputed, spec)
        worst = max(diffs.items(), key=lambda kv: kv[1])
        return dg.AssetCheckResult(
            passed=worst[1] == 0.0,
            description=f"max difference {worst[1]} on {worst[0]}",
            metadata={"max_abs_difference": worst[1], "features_compared": len(diffs)},
        )

    return [feature_contract, training_serving_skew]
