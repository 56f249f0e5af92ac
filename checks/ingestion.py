"""Contracts on ingestion: raw schema (blocking), volume (warn), row contract (blocking), conservation."""

from datetime import date

import dagster as dg
import polars as pl

from assets.common import daily_partitions, lake_uri, markdown_table, raw_pointer_key, retry_policy, table_key
from assets.ingestion import days_with_data, read_raw
from ml.contract import labels_pending_rows, schema_violations
from ml.spec import UseCaseSpec
from resources.storage import Storage


def volume_anomalies(spec: UseCaseSpec, rows_by_day: dict[str, int], tolerance: float = 0.5) -> dict[str, int]:
    """Days whose row count is far from what the spec expects (e.g. a 10x file, a half day)."""
    expected = spec.expected_rows_per_partition
    return {d: n for d, n in rows_by_day.items() if abs(n - expected) > tolerance * expected}


def conservation_breaks(raw: dict[str, int], validated: dict[str, int], quarantined: dict[str, int],
                        merged: dict[str, int]) -> dict[str, tuple]:
    """Days where raw rows != validated + quarantined + merged, with the four counts."""
    return {d: (raw[d], validated[d], quarantined[d], merged[d]) for d in raw
            if raw[d] != validated[d] + quarantined[d] + merged[d]}


def build_ingestion_checks(spec: UseCaseSpec) -> list[dg.AssetChecksDefinition]:
    partitions = daily_partitions(spec)
    raw_key, validated_key, quarantined_key = (f"{stage}_{spec.name}" for stage in ("raw", "validated", "quarantined"))

    @dg.asset_check(asset=raw_key, name="schema_contract", blocking=True, partitions_def=partitions,
                    description="Header, delimiter, encoding and column types of the raw file.",
                    retry_policy=retry_policy())
    def raw_schema(context: dg.AssetCheckExecutionContext, storage: Storage) -> dg.AssetCheckResult:
        violations = []
        for day in days_with_data(spec, storage, context.partition_keys):
            pointer, content = read_raw(spec, storage, day)
            violations += schema_violations(spec, content, pointer["file"])
        table = pl.DataFrame([v.__dict__ for v in violations]) if violations else pl.DataFrame()
        return dg.AssetCheckResult(
            passed=not violations,
            description="; ".join(str(v) for v in violations[:5]) or "schema as contracted",
            metadata={"violations": len(violations), "detail": markdown_table(table, 50)},
        )

    @dg.asset_check(asset=raw_key, name="volume", partitions_def=partitions,
                    description=f"About {spec.expected_rows_per_partition} rows a day; a warning, not a stop.",
                    retry_policy=retry_policy())
    def raw_volume(context: dg.AssetCheckExecutionContext, storage: Storage) -> dg.AssetCheckResult:
        rows = {d: storage.read_json(raw_pointer_key(spec, d))["rows"] for d in context.partition_keys}
        odd = volume_anomalies(spec, rows)
        return dg.AssetCheckResult(
            passed=not odd, severity=dg.AssetCheckSeverity.WARN,
            description=f"unusual row counts: {odd}" if odd else "volume as expected",
            metadata={"rows": sum(rows.values()), "unusual_days": len(odd)},
        )

    @dg.asset_check(asset=validated_key, name="row_contract", blocking=True, partitions_def=partitions,
                    description="Great Expectations suite derived from the spec; must pass on 100% of rows.",
                    retry_policy=retry_policy())
    def row_contract(context: dg.AssetCheckExecutionContext, storage: Storage) -> dg.AssetCheckResult:
        from checks.data_docs import publish
        from checks.gx_contract import validate

        present = days_with_data(spec, storage, context.partition_keys)
        if not present:
            return dg.AssetCheckResult(passed=True, description="no data: no file came for these days")
        frame = pl.concat([storage.read_parquet(table_key(spec, "validated", d)) for d in present])
        days = [date.fromisoformat(d) for d in present]
        outcome = validate(spec, frame, min(days), max(days))
        docs = publish(spec, storage, outcome.result, min(present), max(present))
        return dg.AssetCheckResult(
            passed=outcome.success,
            description="; ".join(f"{o.expectation}({o.column}): {o.unexpected} rows" for o in outcome.failures)
            or f"{len(outcome.outcomes)} expectations hold on {outcome.rows} rows",
            metadata={"expectations": dg.MetadataValue.md(outcome.to_markdown()), "rows": outcome.rows,
                      "labels_pending_rows": labels_pending_rows(spec, frame),
                      "data_docs": dg.MetadataValue.url(lake_uri(storage, docs))},
        )

    @dg.asset_check(asset=validated_key, name="conservation", blocking=True, partitions_def=partitions,
                    additional_deps=[quarantined_key],
                    description="raw rows = validated + quarantined + merged rows, on every partition.",
                    retry_policy=retry_policy())
    def conservation(context: dg.AssetCheckExecutionContext, storage: Storage) -> dg.AssetCheckResult:
        days = days_with_data(spec, storage, context.partition_keys)
        raw = {d: read_raw(spec, storage, d)[0]["rows"] for d in days}
        good, bad, merged = ({d: storage.read_parquet(table_key(spec, stage, d)).height for d in days}
                             for stage in ("validated", "quarantined", "merged"))
        broken = conservation_breaks(raw, good, bad, merged)
        return dg.AssetCheckResult(
            passed=not broken,
            description=f"rows lost or invented on {broken} (raw, validated, quarantined, merged)" if broken
            else "every raw row accounted for",
            metadata={"raw": sum(raw.values()), "validated": sum(good.values()), "quarantined": sum(bad.values()),
                      "merged": sum(merged.values())},
        )

    return [raw_schema, raw_volume, row_contract, conservation]
