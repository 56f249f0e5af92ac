"""The online tier's traffic as assets: `<entity>_online_predictions` (the day's sampled requests, with the
features the one definition gives their rows, and the server's latency per model version) and
`<entity>_online_drift_report` (the batch's drift report and label-free estimate, run on them)."""

from datetime import date, timedelta

import dagster as dg
import polars as pl

from assets.common import OWNERS, daily_partitions, markdown_table, retry_policy, table_key, table_metadata
from assets.features import load_days, present_days
from assets.monitoring import judge_window, numbers
from ml.features import build_features
from ml.monitoring import DRIFT_WINDOW_DAYS
from ml.spec import UseCaseSpec
from resources.storage import Storage
from serving.request_log import SERVED, read_day

QUANTILES = (50, 90, 99)


def latency_by_version(logged: pl.DataFrame) -> pl.DataFrame:
    """Requests and server latency quantiles (ms) per model version; a request counts once, whatever its rows."""
    requests = logged.unique("request_id", keep="first")
    return requests.group_by("model_version").agg(
        pl.len().alias("requests"), pl.col("request_rows").sum().alias("rows"),
        *(pl.col("latency_ms").quantile(q / 100, "linear").alias(f"p{q}_ms") for q in QUANTILES),
    ).sort("model_version")


def online_table(spec: UseCaseSpec, logged: pl.DataFrame) -> pl.DataFrame:
    """The logged rows as a scored table like the batch's: key and features (the one definition, from the
    inputs as the contract typed them), then what was served."""
    features = build_features(spec, logged.drop(*SERVED))
    carried = [c for c in (spec.event_date, *SERVED) if c not in features.columns]
    return features.hstack(logged.select(carried))


def build_online_assets(spec: UseCaseSpec) -> list[dg.AssetsDefinition]:
    partitions = daily_partitions(spec)

    @dg.asset(name=spec.asset("online_predictions"), partitions_def=partitions,
              backfill_policy=dg.BackfillPolicy.single_run(), owners=[OWNERS["serving"]], group_name="serving",
              kinds={"parquet"}, retry_policy=retry_policy())
    def online_predictions(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
        """The model server's sampled requests of each day (`python -m serving`), ready to be monitored."""
        frames = []
        for day in context.partition_keys:
            logged = read_day(spec, storage, day)
            if logged is None:
                context.add_asset_metadata({"no_data": True}, partition_key=day)
                continue
            table = online_table(spec, logged)
            storage.write_parquet(table_key(spec, "online_predictions", day), table)
            frames.append(table)
            latency = latency_by_version(logged)
            context.add_asset_metadata({
                "dagster/row_count": table.height, "latency_by_version": markdown_table(latency.with_columns(
                    pl.selectors.float().round(2)), 20),
                **numbers({f"v{r['model_version']}_{k}": r[k] for r in latency.to_dicts()
                           for k in ("requests", *(f"p{q}_ms" for q in QUANTILES))}),
            }, partition_key=day)
        if not frames:
            return dg.MaterializeResult(metadata={"no_data": True})
        every = pl.concat(frames, how="diagonal_relaxed")
        return dg.MaterializeResult(metadata={
            **table_metadata(every), "latency_by_version": markdown_table(latency_by_version(every), 20)})

    @dg.asset(name=spec.asset("online_drift_report"), deps=[online_predictions, spec.asset("reference_statistics")],
              partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run(),
              owners=[OWNERS["monitoring"]], group_name="monitoring", retry_policy=retry_policy())
    def online_drift_report(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
        """The week of online traffic ending each day, judged as the batch's drift report judges the batch."""
        drifted = {}
        for day in context.partition_keys:
            window = [(date.fromisoformat(day) - timedelta(days=i)).isoformat() for i in range(DRIFT_WINDOW_DAYS)][::-1]
            present, _ = present_days(spec, storage, "online_predictions", window)
            if day not in present:
                context.add_asset_metadata({"no_data": True}, partition_key=day)
                continue
            scored = load_days(spec, storage, "online_predictions", present)
            drifted[day] = judge_window(context, spec, storage, day, window, scored, scored, "online_drift").drifted
        return dg.MaterializeResult(metadata={"drifted_days": sum(drifted.values()), "days": len(drifted)})

    return [online_predictions, online_drift_report]
