"""Prediction contract: every served prediction present and plausible."""

import dagster as dg
import numpy as np
import polars as pl

from assets.common import daily_partitions, retry_policy, table_key
from assets.monitoring import reference_key
from ml.monitoring import PREDICTION
from ml.spec import UseCaseSpec
from resources.storage import Storage

PLAUSIBLE_FACTOR = 3.0  # a prediction above 3x the largest demand the model was trained on is a bug


def prediction_violations(predictions: pl.DataFrame, upper: float) -> list[str]:
    p = predictions[PREDICTION].to_numpy()
    problems = []
    if predictions[PREDICTION].null_count() or np.isnan(p).any():
        problems.append(f"{int(predictions[PREDICTION].null_count() + np.isnan(p).sum())} missing predictions")
    if (p < 0).any():
        problems.append(f"{int((p < 0).sum())} negative predictions")
    if (p > upper).any():
        problems.append(f"{int((p > upper).sum())} predictions above {upper:.0f}")
    if predictions["model_version"].null_count():
        problems.append("rows without a model version")
    return problems


def build_serving_checks(spec: UseCaseSpec) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(asset=spec.asset("batch_predictions"), name="prediction_contract", blocking=True,
                    partitions_def=daily_partitions(spec),
                    description=f"No missing predictions; 0 <= prediction <= {PLAUSIBLE_FACTOR}x the training maximum.",
                    retry_policy=retry_policy())
    def prediction_contract(context: dg.AssetCheckExecutionContext, storage: Storage) -> dg.AssetCheckResult:
        problems, rows = [], 0
        for day in context.partition_keys:
            predictions = storage.read_parquet(table_key(spec, "predictions", day))
            version = predictions["model_version"][0]
            target = storage.read_json(reference_key(spec, version))["stats"]["columns"][spec.target]
            upper = PLAUSIBLE_FACTOR * float(max(target["sketch"]["support"]))
            problems += [f"{day}: {p}" for p in prediction_violations(predictions, upper)]
            rows += predictions.height
        return dg.AssetCheckResult(passed=not problems, description="; ".join(problems[:10]) or f"{rows} predictions ok",
                                   metadata={"rows": rows, "problems": len(problems)})

    return [prediction_contract]
