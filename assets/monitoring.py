"""Serving and monitoring: batch predictions (with shadow scoring), reference statistics, drift and
performance reports."""

import base64
import json
from datetime import date, timedelta

import dagster as dg
import polars as pl

from assets.common import OWNERS, daily_partitions, markdown_table, retry_policy, table_key, table_metadata
from assets.features import load_days
from assets.training import LOSS_ESTIMATOR_ARTIFACT, candidate_version, model_name, version_training_set
from ml.baselines import seasonal_naive
from ml.performance_estimate import LabelFeedback, LossEstimator
from ml.drift.reference import ReferenceStats
from ml.drift.report import render_psi_png
from ml.features import feature_matrix
from ml.monitoring import (DRIFT_WINDOW_DAYS, PREDICTION, clip_counts, day_performance, estimated_performance,
                           reference_statistics, window_drift)
from ml.onnx_scoring import OnnxModel
from ml.spec import UseCaseSpec
from resources.mlflow_tracking import CHALLENGER, CHAMPION, MlflowResource
from resources.storage import Storage


def reference_key(spec: UseCaseSpec, version: str) -> str:
    return f"{spec.name}/reference/v{version}.json"


_MODELS: dict[tuple[str, str, str], OnnxModel] = {}


def onnx_model(mlflow: MlflowResource, name: str, version: str) -> OnnxModel:
    """Registered versions are immutable, so one session per version serves every partition."""
    key = (mlflow.tracking_uri, name, version)
    if key not in _MODELS:
        _MODELS[key] = OnnxModel(mlflow.load_onnx(name, version))
    return _MODELS[key]


def scored_day(spec: UseCaseSpec, storage: Storage, day: str) -> pl.DataFrame:
    """A day's features (with labels when known) joined to the champion's predictions."""
    features = storage.read_parquet(table_key(spec, "features", day))
    predictions = storage.read_parquet(table_key(spec, "predictions", day))
    return features.join(predictions.select(*spec.key, PREDICTION, "model_version"), on=list(spec.key))


def labelled_history(spec: UseCaseSpec, storage: Storage, day: str, version: str,
                     look_back_days: int = 60) -> tuple[list[float], list[float]]:
    """Realized and uncorrected estimated MAE of `version`'s labelled days before `day`, oldest first.

    One listing of the performance reports, then a read of each in the look-back: days whose labels
    are still pending have no report, and a report carries the estimate its day was given.
    """
    prefix = f"{spec.name}/performance/"
    first = (date.fromisoformat(day) - timedelta(days=look_back_days)).isoformat()
    realized, estimated = [], []
    for key in storage.list_keys(prefix):
        if first <= key[len(prefix):].removesuffix(".json") < day:
            perf = storage.read_json(key)
            if perf["model_version"] == version and perf.get("estimated_mae_dle") is not None:
                realized.append(perf["mae"])
                estimated.append(perf["estimated_mae_dle"])
    return realized, estimated


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def build_monitoring_assets(spec: UseCaseSpec) -> list[dg.AssetsDefinition]:
    partitions = daily_partitions(spec)
    name = model_name(spec)

    @dg.asset(name=spec.asset("reference_statistics"), deps=[spec.asset("candidate_model")],
              owners=[OWNERS["monitoring"]], group_name="monitoring", kinds={"numpy"}, retry_policy=retry_policy())
    def reference(context: dg.AssetExecutionContext, storage: Storage, mlflow: MlflowResource) -> dg.MaterializeResult:
        """Sketched once per model version from its training window, so daily checks never rescan it."""
        version = candidate_version(context, spec, storage, mlflow)
        _, frame = version_training_set(spec, storage, mlflow, version)
        model = onnx_model(mlflow, name, version.version)
        scored = frame.with_columns(pl.Series(PREDICTION, clip_counts(model.predict(feature_matrix(spec, frame)))))
        stats = reference_statistics(spec, scored)
        # The baseline is the recipe's out-of-sample hold-out MAE: the served refit saw those days.
        holdout_mae = mlflow.client().get_run(version.run_id).data.metrics["holdout_mae"]
        estimator = json.loads(mlflow.load_run_artifact(version.run_id, LOSS_ESTIMATOR_ARTIFACT))
        key = reference_key(spec, version.version)
        storage.write_json(key, {"version": version.version, "holdout_mae": holdout_mae, "stats": stats.to_dict(),
                                 "loss_estimator": estimator})
        return dg.MaterializeResult(metadata={
            "model_version": version.version, "rows": stats.n_rows, "days": stats.n_days, "windows": stats.n_resamples,
            "threshold_rule": stats.threshold_rule, "holdout_mae": holdout_mae, "uri": storage.uri(key),
        })

    @dg.asset(name=spec.asset("batch_predictions"), deps=[spec.asset("features"), spec.asset("champion_model")],
              partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run(),
              owners=[OWNERS["serving"]], group_name="serving", kinds={"onnx", "parquet"},
              retry_policy=retry_policy())
    def batch_predictions(context: dg.AssetExecutionContext, storage: Storage,
                          mlflow: MlflowResource) -> dg.MaterializeResult:
        """The champion scores each day from ONNX; a challenger, if any, scores in shadow beside it."""
        champion = mlflow.version_by_alias(name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{name} has no '{CHAMPION}': train and promote a model first", allow_retries=False)
        challenger = mlflow.version_by_alias(name, CHALLENGER)
        frames = []
        for day in context.partition_keys:
            features = storage.read_parquet(table_key(spec, "features", day))
            X = feature_matrix(spec, features)
            out = features.select(*spec.key).with_columns(
                pl.Series(PREDICTION, clip_counts(onnx_model(mlflow, name, champion.version).predict(X))),
                pl.lit(champion.version).alias("model_version"),
            )
            if challenger is not None and challenger.version != champion.version:
                out = out.with_columns(
                    pl.Series("shadow_prediction", clip_counts(onnx_model(mlflow, name, challenger.version).predict(X))),
                    pl.lit(challenger.version).alias("shadow_version"),
                )
            storage.write_parquet(table_key(spec, "predictions", day), out)
            frames.append(out)
        return dg.MaterializeResult(metadata={
            **table_metadata(pl.concat(frames, how="diagonal_relaxed")),
            "model_version": champion.version,
            "shadow_version": challenger.version if challenger and challenger.version != champion.version else "none",
        })

    @dg.asset(name=spec.asset("drift_report"), deps=[spec.asset("batch_predictions")], partitions_def=partitions,
              backfill_policy=dg.BackfillPolicy.single_run(), owners=[OWNERS["monitoring"]], group_name="monitoring",
              retry_policy=retry_policy())
    def drift_report(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
        """The week ending each day against the serving model's reference: effect sizes over adaptive
        thresholds calibrated on the reference's own weeks."""
        reports = {}
        for day in context.partition_keys:
            window = [(date.fromisoformat(day) - timedelta(days=i)).isoformat() for i in range(DRIFT_WINDOW_DAYS)][::-1]
            features = load_days(spec, storage, "features", [d for d in window if storage.exists(table_key(spec, "features", d))])
            scored = pl.concat([scored_day(spec, storage, d) for d in window
                                if storage.exists(table_key(spec, "predictions", d))])
            today = scored.filter(pl.col(spec.event_date) == date.fromisoformat(day))
            version = today["model_version"][0]
            reference = storage.read_json(reference_key(spec, version))
            stats = ReferenceStats.from_dict(reference["stats"])
            # Outputs of an earlier champion say nothing about this model's reference.
            report = window_drift(spec, stats, features, scored.filter(pl.col("model_version") == version))
            estimate = estimated_performance(spec, LossEstimator.from_dict(reference["loss_estimator"]), today,
                                             reference["holdout_mae"],
                                             LabelFeedback(), *labelled_history(spec, storage, day, version))
            storage.write_json(f"{spec.name}/drift/{day}.json", {
                "day": day, "window": f"{window[0]}..{day}", "model_version": version, "drifted": report.drifted,
                **estimate,
                "drifted_features": report.drifted_features, "share_drifted": report.share_drifted,
                "columns": [{"column": c.column, "role": c.role, "drifted_by": list(c.drifted_by), **c.stats}
                            for c in report.columns],
            })
            reports[day] = report
        last_day, last = list(reports.items())[-1]
        days = pl.DataFrame({"day": list(reports), "drifted": [r.drifted for r in reports.values()],
                             "features": [", ".join(r.drifted_features) for r in reports.values()]})
        return dg.MaterializeResult(metadata={
            "dataset_drift": last.drifted,
            "drifted_days": int(days["drifted"].sum()),
            "drifted_features": ", ".join(last.drifted_features) or "none",
            "report": dg.MetadataValue.md(f"### {last_day}\n\n{last.to_markdown()}\n\n"
                                          + png_markdown(render_psi_png(last), "PSI per column")),
            "days": markdown_table(days, 60),
        })

    @dg.asset(name=spec.asset("performance_report"), deps=[spec.asset("batch_predictions"), spec.asset("drift_report")],
              partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run(),
              owners=[OWNERS["monitoring"]], group_name="monitoring", retry_policy=retry_policy())
    def performance_report(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
        """Once a day's labels exist: error against the hold-out baseline and the seasonal-naive forecast,
        per slice, and what it costs in the spec's business figure."""
        figure = spec.business_figure
        rows = []
        for day in context.partition_keys:
            scored = scored_day(spec, storage, day)
            if spec.target not in scored.columns or scored[spec.target].null_count() == scored.height:
                context.log.info(f"{day}: labels not arrived yet; report left for a later run")
                continue
            version = scored["model_version"][0]
            baseline = storage.read_json(reference_key(spec, version))["holdout_mae"]
            earlier = (date.fromisoformat(day) - timedelta(days=spec.seasonal_period_days)).isoformat()
            history = load_days(spec, storage, "features", [earlier]) if storage.exists(
                table_key(spec, "features", earlier)) else scored.clear()
            drift_key = f"{spec.name}/drift/{day}.json"
            drift = storage.read_json(drift_key) if storage.exists(drift_key) else {}
            report = {"day": day, "model_version": version, "estimated_mae": drift.get("estimated_mae"),
                      "estimated_mae_dle": drift.get("estimated_mae_dle"),
                      **day_performance(spec, scored, baseline, seasonal_naive(spec, history, scored))}
            storage.write_json(f"{spec.name}/performance/{day}.json", report)
            rows.append({k: report[k] for k in ("day", "model_version", "mae", "estimated_mae", "naive_mae", "rmse",
                                                "mape", "mae_ratio")}
                        | {figure.short: report["business"]["short_per_day"],
                           figure.idle: report["business"]["idle_per_day"]})
        if not rows:
            return dg.MaterializeResult(metadata={"labels_pending": True})
        table = pl.DataFrame(rows)
        last = rows[-1]
        return dg.MaterializeResult(metadata={
            "mae": last["mae"], "mae_ratio": last["mae_ratio"], "labels_pending": False,
            "naive_mae": last["naive_mae"], "estimated_mae": last["estimated_mae"] or float("nan"),
            figure.short: last[figure.short], figure.idle: last[figure.idle],
            "days": markdown_table(table.with_columns(pl.selectors.float().round(3)), 60),
        })

    return [reference, batch_predictions, drift_report, performance_report]
