"""Serving and monitoring: batch predictions (with shadow scoring), reference statistics, drift and
performance reports."""

import base64
import json
import math
from datetime import date, timedelta

import dagster as dg
import polars as pl

from assets.common import OWNERS, daily_partitions, markdown_table, retry_policy, table_key, table_metadata
from assets.features import load_days
from assets.training import LOSS_ESTIMATOR_ARTIFACT, candidate_version, model_name, version_training_set
from ml.baselines import seasonal_naive
from ml.performance_estimate import LabelFeedback, LossEstimator
from ml.drift.reference import ReferenceStats
from ml.drift.report import DriftReport, render_effect_heatmap_png, render_series_png
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
                     look_back_days: int = 60) -> tuple[list[float], list[float], list[bool]]:
    """Realized and uncorrected estimated MAE of the labelled days before `day`, oldest first, and which
    of them `version` served (days whose labels are still pending have no performance report; a
    report carries the estimate its day was given)."""
    yesterday = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    reports = [r for r in recent_reports(spec, storage, "performance", yesterday, look_back_days)
               if r.get("estimated_mae_dle") is not None]
    return ([r["mae"] for r in reports], [r["estimated_mae_dle"] for r in reports],
            [r["model_version"] == version for r in reports])


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


# The pictures look back this many days of stored reports, ending at the run's last day.
PLOT_DAYS = 30


def recent_reports(spec: UseCaseSpec, storage: Storage, kind: str, last_day: str,
                   days: int = PLOT_DAYS) -> list[dict]:
    """The stored `kind` ("drift" | "performance") reports of the `days` days ending at `last_day`,
    oldest first: one listing, then a read of each in range."""
    prefix = f"{spec.name}/{kind}/"
    first = (date.fromisoformat(last_day) - timedelta(days=days - 1)).isoformat()
    keys = sorted(k for k in storage.list_keys(prefix) if first <= k[len(prefix):].removesuffix(".json") <= last_day)
    return [storage.read_json(k) for k in keys]


def numbers(values: dict) -> dict:
    """Only the finite numbers (plain floats and ints) of `values`, for the Partitions and Plots tabs."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            out[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float) and math.isfinite(value):
            out[key] = dg.MetadataValue.float(value)
    return out


def drift_heatmap(reports: list[dict]) -> bytes | None:
    """Column x day effect (statistic / threshold) of stored drift reports, blank where a column was not
    judged (a young model's outputs) or not measured; None if no report carries it."""
    columns: list[str] = []
    for r in reports:
        for c in r["columns"]:
            name = c["column"] if c["role"] == "feature" else f"{c['column']} ({c['role']})"
            if "effect" in c and name not in columns:
                columns.append(name)
    if not columns:
        return None
    grid = [[math.nan] * len(reports) for _ in columns]
    for j, r in enumerate(reports):
        for c in r["columns"]:
            name = c["column"] if c["role"] == "feature" else f"{c['column']} ({c['role']})"
            if c.get("effect") is not None and not c.get("not_judged") and name in columns:
                grid[columns.index(name)][j] = c["effect"]
    return render_effect_heatmap_png([r["day"] for r in reports], columns, grid)


def mae_plot(reports: list[dict]) -> bytes:
    """Realized champion MAE, shadow challenger MAE, seasonal-naive MAE and the label-free estimate by day."""
    def series(key: str) -> list[float]:
        return [math.nan if r.get(key) is None else float(r[key]) for r in reports]

    return render_series_png([r["day"] for r in reports],
                             {"champion (realized)": series("mae"), "challenger (shadow)": series("shadow_mae"),
                              "seasonal naive": series("naive_mae"), "estimated (label-free)": series("estimated_mae")},
                             "MAE by day", "MAE")


def shadow_performance(spec: UseCaseSpec, storage: Storage, scored: pl.DataFrame, day: str) -> dict:
    """The shadow challenger's MAE on the day's labelled rows, when a challenger scored that day."""
    predictions = storage.read_parquet(table_key(spec, "predictions", day))
    if "shadow_prediction" not in predictions.columns:
        return {}
    rows = scored.select(*spec.key, spec.target).join(
        predictions.select(*spec.key, "shadow_prediction", "shadow_version"), on=list(spec.key)).drop_nulls(
        [spec.target, "shadow_prediction"])
    if not rows.height:
        return {}
    error = (rows["shadow_prediction"].cast(pl.Float64) - rows[spec.target].cast(pl.Float64)).abs().mean()
    return {"shadow_mae": float(error), "shadow_version": rows["shadow_version"][0]}


def judge_window(context: dg.AssetExecutionContext, spec: UseCaseSpec, storage: Storage, day: str, window: list[str],
                 features: pl.DataFrame, scored: pl.DataFrame, kind: str) -> DriftReport:
    """The week ending `day` (its inputs' `features`, its `scored` rows) against the reference of the
    version that served most of the day, with the day's label-free estimate: stored as
    `<name>/<kind>/<day>.json` and put on the day's materialization. The batch's drift report and the
    online tier's share it."""
    today = scored.filter(pl.col(spec.event_date) == date.fromisoformat(day))
    version = today["model_version"].mode().sort()[0]  # the champion's; a canary serves a share of the rows
    today = today.filter(pl.col("model_version") == version)
    reference = storage.read_json(reference_key(spec, version))
    stats = ReferenceStats.from_dict(reference["stats"])
    # Outputs of an earlier champion say nothing about this model's reference.
    report = window_drift(spec, stats, features, scored.filter(pl.col("model_version") == version))
    estimate = estimated_performance(spec, LossEstimator.from_dict(reference["loss_estimator"]), today,
                                     reference["holdout_mae"],
                                     LabelFeedback(), *labelled_history(spec, storage, day, version))
    storage.write_json(f"{spec.name}/{kind}/{day}.json", {
        "day": day, "window": f"{window[0]}..{day}", "model_version": version, "drifted": report.drifted,
        **estimate,
        "drifted_features": report.drifted_features, "share_drifted": report.share_drifted,
        "max_effect": None if math.isnan(report.max_effect) else report.max_effect,
        "columns": [{"column": c.column, "role": c.role, "drifted_by": list(c.drifted_by),
                     "not_judged": c.not_judged or None,
                     "effect": None if math.isnan(c.effect) else c.effect, **c.stats}
                    for c in report.columns],
    })
    # This day's own materialization: its numbers, drawn by day in the Partitions and Plots tabs.
    context.add_asset_metadata({
        "dataset_drift": report.drifted,
        "drifted_features": ", ".join(report.drifted_features) or "none",
        **numbers({"share_drifted": report.share_drifted, "drifted_feature_count": len(report.drifted_features),
                   "max_effect": report.max_effect, "estimated_mae": estimate["estimated_mae"],
                   "estimated_low": estimate["estimated_low"], "estimated_high": estimate["estimated_high"]}),
    }, partition_key=day)
    return report


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
            reports[day] = judge_window(context, spec, storage, day, window, features, scored, "drift")
        last_day, last = list(reports.items())[-1]
        days = pl.DataFrame({"day": list(reports), "drifted": [r.drifted for r in reports.values()],
                             "features": [", ".join(r.drifted_features) for r in reports.values()]})
        # The picture, rendered once per run, goes on the last day's materialization (the asset's latest).
        # Its last column is the day's verdict per column, so no separate per-day chart is drawn: each
        # picture costs a tenth of a second of the daily graph.
        heatmap = drift_heatmap(recent_reports(spec, storage, "drift", last_day))
        context.add_asset_metadata({
            "report": dg.MetadataValue.md(
                f"### {last_day}\n\n{last.to_markdown()}"
                + ("" if heatmap is None else f"\n\n#### Effect over threshold, last {PLOT_DAYS} days\n\n"
                   + png_markdown(heatmap, "drift heat map"))),
        }, partition_key=last_day)
        return dg.MaterializeResult(metadata={
            "drifted_days": int(days["drifted"].sum()),
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
                context.add_asset_metadata({"labels_pending": True}, partition_key=day)
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
                      **day_performance(spec, scored, baseline, seasonal_naive(spec, history, scored)),
                      **shadow_performance(spec, storage, scored, day)}
            storage.write_json(f"{spec.name}/performance/{day}.json", report)
            context.add_asset_metadata({"labels_pending": False, **numbers({
                "mae": report["mae"], "estimated_mae": report["estimated_mae"], "naive_mae": report["naive_mae"],
                "mae_ratio": report["mae_ratio"], "shadow_mae": report.get("shadow_mae"),
                figure.short: report["business"]["short_per_day"], figure.idle: report["business"]["idle_per_day"]})},
                partition_key=day)
            rows.append({k: report[k] for k in ("day", "model_version", "mae", "estimated_mae", "naive_mae", "rmse",
                                                "mape", "mae_ratio")}
                        | {figure.short: report["business"]["short_per_day"],
                           figure.idle: report["business"]["idle_per_day"]})
        if not rows:
            return dg.MaterializeResult(metadata={"labels_pending": True})
        table = pl.DataFrame(rows)
        # Rendered once per run, on the latest day's materialization (the asset's latest).
        last_day = context.partition_keys[-1]
        history = recent_reports(spec, storage, "performance", last_day)
        context.add_asset_metadata({"mae_by_day": dg.MetadataValue.md(
            f"#### MAE by day, last {PLOT_DAYS} days\n\n" + png_markdown(mae_plot(history), "MAE by day"))},
            partition_key=last_day)
        return dg.MaterializeResult(metadata={
            "days": markdown_table(table.with_columns(pl.selectors.float().round(3)), 60),
        })

    return [reference, batch_predictions, drift_report, performance_report]
