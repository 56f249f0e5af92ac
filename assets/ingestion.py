"""Raw files in, typed rows out: raw (exactly as arrived), validated and quarantined tables."""

import hashlib
from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl

from assets.common import (OWNERS, daily_partitions, fails_for_good, markdown_table, raw_blob_key, raw_pointer_key,
                           retry_policy, table_key, table_metadata)
from ml.contract import conflict_rows, count_rows, labels_pending_rows, split_rows
from ml.spec import UseCaseSpec
from resources.sources import DaySource, MissingFile
from resources.storage import Storage


def read_raw(spec: UseCaseSpec, storage: Storage, day: str) -> tuple[dict, bytes]:
    pointer = storage.read_json(raw_pointer_key(spec, day))
    return pointer, b"" if is_gap(pointer) else storage.read_bytes(pointer["key"])


def is_gap(pointer: dict) -> bool:
    """The raw pointer of a day whose file never came: no rows to split, score or monitor."""
    return pointer.get("no_data", False)


def days_with_data(spec: UseCaseSpec, storage: Storage, days) -> list[str]:
    """The days whose file came; a gap day has nothing to split, check, score or monitor."""
    return [d for d in days if not is_gap(storage.read_json(raw_pointer_key(spec, d)))]


def gap_metadata(gaps: dict[str, str], days: int) -> dict:
    """`no_data` is true when none of the run's days had a file; the gaps are listed with the first reason."""
    if not gaps:
        return {}
    return {"no_data": len(gaps) == days, "no_data_days": sorted(gaps), "reason": next(iter(gaps.values()))}


# A day's file must have landed by 06:00 UTC the next day: raw must have materialized in the 24 hours
# before each 06:00. Dagster's freshness daemon judges it in real time (asset health in the UI, a
# FRESHNESS_STATE_CHANGE event the alert sensor pages on); runs never evaluate it, so a replay of 2011
# is not "late". The policy is asset-level: any materialization in the window counts, a backfill too.
LANDING_DEADLINE_HOUR = 6
LANDING_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron=f"0 {LANDING_DEADLINE_HOUR} * * *",
                                            lower_bound_delta=timedelta(days=1))


def overdue_day(failed_at: float) -> str:
    """The partition a freshness failure observed at `failed_at` (a timestamp) is about: the day before
    the last deadline that had passed."""
    deadline_day = (datetime.fromtimestamp(failed_at, timezone.utc) - timedelta(hours=LANDING_DEADLINE_HOUR)).date()
    return (deadline_day - timedelta(days=1)).isoformat()


def build_ingestion_assets(spec: UseCaseSpec) -> list[dg.AssetsDefinition]:
    partitions = daily_partitions(spec)
    raw_key, validated_key, quarantined_key = (f"{stage}_{spec.name}" for stage in ("raw", "validated", "quarantined"))

    @dg.asset(
        name=raw_key,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        owners=[OWNERS["data"]],
        group_name="ingestion",
        kinds={"csv"},
        retry_policy=retry_policy(),
        freshness_policy=LANDING_FRESHNESS,
    )
    def raw(context: dg.AssetExecutionContext, source: DaySource, storage: Storage) -> dg.MaterializeResult:
        """The day's file byte for byte, content-addressed, so a later correction never overwrites history."""
        total_rows = total_bytes = 0
        files, gaps = [], {}
        for day in context.partition_keys:
            try:
                f = source.fetch(spec, day)
            except MissingFile as gap:  # a day without a file is recorded as a gap, not a failed run
                storage.write_json(raw_pointer_key(spec, day), {"no_data": True, "reason": str(gap), "rows": 0})
                gaps[day] = str(gap)
                continue
            sha = hashlib.sha256(f.content).hexdigest()
            key = raw_blob_key(spec, day, sha)
            if not storage.exists(key):
                storage.write_bytes(key, f.content)
            with fails_for_good():
                rows = count_rows(f.content)
            storage.write_json(raw_pointer_key(spec, day),
                               {"key": key, "file": f.name, "sha256": sha, "bytes": len(f.content), "rows": rows})
            total_rows += rows
            total_bytes += len(f.content)
            files.append({"day": day, "file": f.name, "sha256": sha[:16], "bytes": len(f.content), "rows": rows})
        return dg.MaterializeResult(metadata={
            "dagster/row_count": total_rows,
            "bytes": total_bytes,
            "files": markdown_table(pl.DataFrame(files)),
            "sha256": files[0]["sha256"] if len(files) == 1 else f"{len(files)} files",
            "uri": storage.uri(raw_pointer_key(spec, context.partition_keys[0])),
            **gap_metadata(gaps, len(context.partition_keys)),
        })

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(validated_key, deps=[raw_key], owners=[OWNERS["data"]], group_name="ingestion",
                         kinds={"parquet"}, description="Typed, de-duplicated rows that pass the contract."),
            dg.AssetSpec(quarantined_key, deps=[raw_key], owners=[OWNERS["data"]], group_name="ingestion",
                         kinds={"parquet"}, description="Every row that broke a rule, as it arrived, with the rules."),
        ],
        name=f"contract_split_{spec.name}",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy(),
    )
    def split(context: dg.AssetExecutionContext, storage: Storage):
        """Each raw row goes to exactly one of validated, quarantined or merged (a duplicate folded into a
        validated row by the spec's policy, kept as a table for the conservation check); a schema break raises."""
        validated, quarantined, merged = [], [], []
        days = days_with_data(spec, storage, context.partition_keys)
        if not days:
            for key in (validated_key, quarantined_key):
                yield dg.MaterializeResult(asset_key=key, metadata={"no_data": True, "dagster/row_count": 0})
            return
        for day in days:
            pointer, content = read_raw(spec, storage, day)
            with fails_for_good():  # a schema break (ContractViolation) names file, column and rule; never retried
                result = split_rows(spec, content, pointer["file"], partition_day=day)
            storage.write_parquet(table_key(spec, "validated", day), result.validated)
            storage.write_parquet(table_key(spec, "quarantined", day), result.quarantined)
            storage.write_parquet(table_key(spec, "merged", day), result.merged)
            validated.append(result.validated)
            quarantined.append(result.quarantined)
            merged.append(result.merged)
            if result.quarantined.height:
                context.log.warning(f"{day}: {result.quarantined.height} of {result.raw_rows} rows quarantined")
        good, bad = pl.concat(validated), pl.concat(quarantined)
        reasons = (bad.select(pl.col("reason").str.extract_all(r"\[([a-z_.]+)\]").alias("rule")).explode("rule")
                   .group_by("rule").len().sort("len", descending=True))
        # Rows whose labels have not arrived yet: validated with nulls, complete when the day lands again.
        yield dg.MaterializeResult(asset_key=validated_key, metadata={
            **table_metadata(good), "labels_pending_rows": labels_pending_rows(spec, good),
            "merged_rows": sum(m.height for m in merged),
        })
        yield dg.MaterializeResult(asset_key=quarantined_key, metadata={
            **table_metadata(bad), "rules_broken": markdown_table(reasons), "conflict_rows": conflict_rows(bad),
        })

    return [raw, split]
