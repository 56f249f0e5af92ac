"""Evaluation gate and promotion: the champion alias moves only on evidence."""

import math
import re
from datetime import datetime, timezone

import dagster as dg
import polars as pl

from assets.common import OWNERS, fails_for_good, retry_policy
from assets.common import lake_uri
from assets.training import JUDGED_MODEL_ARTIFACT, candidate_version, model_name, version_training_set
from ml.baselines import seasonal_naive
from ml.comparison import compare
from ml.features import feature_matrix
from ml.gate import GateConfig
from ml.onnx_scoring import OnnxModel, servability
from ml.spec import UseCaseSpec
from resources.mlflow_tracking import CHALLENGER, CHAMPION, MlflowResource
from resources.storage import Storage


class GateRules(dg.Config):
    min_relative_mae_improvement: float = 0.02
    min_gain_over_naive: float = 0.05
    slice_tolerance: float = 0.10
    slice_requires_significance: bool = True
    min_slice_rows: int = 24
    require_significance: bool = False
    max_latency_ms_per_1k: float = 200.0
    max_model_size_bytes: int = 200 * 1024**2


def judged_model(mlflow: MlflowResource, name: str, version) -> OnnxModel:
    """A version's judged fit (versions registered before the refit scheme are their own judged fit)."""
    from mlflow.exceptions import MlflowException

    try:
        return OnnxModel(mlflow.load_run_artifact(version.run_id, JUDGED_MODEL_ARTIFACT))
    except MlflowException:
        return OnnxModel(mlflow.load_onnx(name, version.version))


def evaluation_key(spec: UseCaseSpec, version: str) -> str:
    return f"{spec.name}/evaluations/challenger-v{version}.json"


EVALUATION_ARTIFACT = "evaluation.json"  # the gate run's copy of the evidence written to the lake
GATE_SECTION, PROMOTION_SECTION = "Gate", "Promotion"  # the sections of a version's description they own


def _metric_name(*parts) -> str:
    """A metric name MLflow accepts (letters, digits, _ - . / space): segments like "[0, 6)" are rewritten."""
    return "/".join(re.sub(r"[^\w.\- ]+", "_", str(p)).strip("_") or "_" for p in parts)


def _finite(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def gate_metrics(comparison: dict) -> dict[str, float]:
    """The evaluation as MLflow metrics: overall per model, per slice, naive baseline, bootstrap, each rule."""
    out = {"passed": float(comparison["decision"]["passed"])}
    for who in ("challenger", "champion"):
        out |= {f"{who}_{k}": v for k, v in (comparison[who] or {}).items()}
        for row in comparison[f"{who}_slices"] or []:
            out |= {_metric_name("slice", row["slice"], row["segment"], f"{who}_{k}"): row[k]
                    for k in ("mae", "rmse", "n", "diff_ci_low", "diff_ci_high") if k in row}
    if comparison["naive"]:
        naive = comparison["naive"]
        out |= {"naive_mae": naive["naive_mae"], "naive_challenger_mae": naive["challenger_mae"],
                "naive_rows": naive["rows"]}
    if comparison["bootstrap"]:
        out |= {f"bootstrap_{k}": v for k, v in comparison["bootstrap"].items()}
    out |= {f"business_{k}": v for k, v in comparison["challenger_business"].items()}
    for rule in comparison["decision"]["rules"]:
        out[_metric_name("rule", rule["rule"], "passed")] = float(rule["passed"])
        if rule["observed"] is not None:
            out[_metric_name("rule", rule["rule"], "observed")] = rule["observed"]
    return _finite(out)


def gate_summary(evidence: dict, run_id: str | None) -> str:
    """The gate's verdict for the challenger's description."""
    comparison, champion = evidence["comparison"], evidence["champion_version"]
    against = f"champion v{champion}" if champion else "no champion (first model)"
    maes = [f"challenger MAE {comparison['challenger']['mae']:.4g}"]
    if comparison["champion"]:
        maes.append(f"champion MAE {comparison['champion']['mae']:.4g}")
    if comparison["naive"] and comparison["naive"]["rows"]:
        maes.append(f"seasonal-naive MAE {comparison['naive']['naive_mae']:.4g}")
    failed = [r["message"] for r in comparison["decision"]["rules"] if not r["passed"]]
    lines = [f"{'PASSED' if evidence['passed'] else 'REFUSED'} against {against} on the hold-out "
             f"{evidence['holdout']} ({evidence['evaluated_at'][:19]}Z): {', '.join(maes)}."]
    lines += ["", "Failed rules:", *(f"- {m}" for m in failed)] if failed else ["", "Every gate rule passed."]
    if run_id:
        lines += ["", f"Evidence: MLflow run `{run_id}` (artifacts `{EVALUATION_ARTIFACT}`, `gate.md`)."]
    return "\n".join(lines)


def evidence_links(spec: UseCaseSpec, storage: Storage, evidence: dict) -> dict:
    """Where the evaluation can be read: the lake file as a URI and, when logged, the gate run's artifact."""
    links = {"evidence_uri": lake_uri(storage, evaluation_key(spec, evidence["challenger_version"]))}
    if evidence.get("mlflow_run_id"):
        links["evidence_run"] = f"runs:/{evidence['mlflow_run_id']}/{EVALUATION_ARTIFACT}"
    return links


def read_evaluation(spec: UseCaseSpec, storage: Storage, version: str) -> dict:
    """The stored evidence of the gate on `version`; its absence is not transient, so it is not retried."""
    key = evaluation_key(spec, version)
    if not storage.exists(key):
        raise dg.Failure(f"no evaluation of {model_name(spec)} v{version} ({storage.uri(key)}): materialize "
                         f"{spec.asset('model_evaluation')} first", allow_retries=False)
    return storage.read_json(key)


def build_promotion_assets(spec: UseCaseSpec) -> list[dg.AssetsDefinition]:
    evaluation_asset, champion_asset = spec.asset("model_evaluation"), spec.asset("champion_model")

    @dg.asset(name=evaluation_asset, deps=[spec.asset("candidate_model")], owners=[OWNERS["training"]],
              group_name="promotion", kinds={"onnx"}, retry_policy=retry_policy())
    def model_evaluation(context: dg.AssetExecutionContext, config: GateRules, storage: Storage,
                         mlflow: MlflowResource) -> dg.MaterializeResult:
        """Challenger and champion scored from ONNX on the same, most recent hold-out; the gate decides."""
        import mlflow as mlf

        name = model_name(spec)
        challenger = candidate_version(context, spec, storage, mlflow)
        champion = mlflow.version_by_alias(name, CHAMPION)
        pointer, frame = version_training_set(spec, storage, mlflow, challenger)
        holdout = frame.filter(pl.col("split") == "holdout")
        with fails_for_good():
            X = feature_matrix(spec, holdout)
        # Recipes are judged by their judged fits, each blind to the last hold-out days before its own
        # cut-off: the champion's refit may have trained on this hold-out, its judged fit cannot have
        # (the champion's cut-off is earlier). The registered versions are the refits, whose serving
        # budgets are what is measured here.
        challenger_pred = judged_model(mlflow, name, challenger).predict(X)
        champion_pred = judged_model(mlflow, name, champion).predict(X) if champion else None
        serving = servability(mlflow.load_onnx(name, challenger.version), X)
        with fails_for_good():  # the gate's rules or data do not fit: a retry would judge the same way
            result = compare(spec, holdout, challenger_pred, champion_pred, GateConfig(**config.model_dump()),
                             serving.latency_ms_per_1k, serving.size_bytes,
                             naive_pred=seasonal_naive(spec, frame, holdout))
        evidence = {
            "challenger_version": challenger.version,
            "champion_version": champion.version if champion else None,
            "holdout": f"{holdout[spec.event_date].min()}..{holdout[spec.event_date].max()}",
            "data_digest": pointer["digest"],
            "passed": result.decision.passed,
            "evaluated_at": datetime.now(timezone.utc).isoformat(),
            "comparison": result.to_dict(),
        }
        key = evaluation_key(spec, challenger.version)
        # The evaluation as an MLflow run of its own, named and tagged by both versions; the lake file
        # (what the champion step decides on) is written inside it, so a failure leaves the run FAILED.
        with mlflow.start_run(f"gate-v{challenger.version}-vs-v{champion.version if champion else 'none'}",
                              experiment=spec.name, tags={
                                  "purpose": "gate", "model_name": name, "challenger_version": challenger.version,
                                  "champion_version": champion.version if champion else "none",
                                  "challenger_run_id": challenger.run_id,
                                  "champion_run_id": champion.run_id if champion else "none",
                                  "decision": "promote" if result.decision.passed else "refuse",
                                  "holdout": evidence["holdout"], "data_digest": pointer["digest"],
                                  "dagster_run_id": context.run.run_id, "evaluation_uri": lake_uri(storage, key),
                                  "mlflow.note.content": result.decision.to_markdown()[:7000],
                              }) as run:
            evidence["mlflow_run_id"] = run.info.run_id
            mlf.log_params({f"gate_{k}": v for k, v in config.model_dump().items()})
            mlf.log_metrics(gate_metrics(evidence["comparison"]))
            mlf.log_dict(evidence, EVALUATION_ARTIFACT)
            mlf.log_text(result.to_markdown(), "gate.md")
            storage.write_json(key, evidence)
        client = mlflow.client()
        for k, v in {"gate.run_id": run.info.run_id, "gate.passed": result.decision.passed,
                     **{f"gate.{k}": v for k, v in evidence_links(spec, storage, evidence).items()}}.items():
            client.set_model_version_tag(name, challenger.version, k, str(v))
        mlflow.describe_version(name, challenger.version, GATE_SECTION, gate_summary(evidence, run.info.run_id))
        return dg.MaterializeResult(metadata={
            "mlflow_run": mlflow.run_link(run.info.run_id),
            "challenger_model_version": mlflow.model_version_link(name, challenger.version),
            "gate": dg.MetadataValue.md(result.to_markdown()),
            "passed": result.decision.passed,
            "challenger_version": challenger.version,
            "champion_version": champion.version if champion else "none",
            "challenger_mae": result.challenger["mae"],
            "champion_mae": result.champion["mae"] if result.champion else float("nan"),
            "naive_mae": result.naive.naive_mae if result.naive else float("nan"),
            spec.business_figure.short: result.challenger_business["short_per_day"],
            spec.business_figure.idle: result.challenger_business["idle_per_day"],
        })

    @dg.asset(name=champion_asset, deps=[evaluation_asset], owners=[OWNERS["serving"]], group_name="promotion",
              kinds={"mlflow"}, retry_policy=retry_policy())
    def champion_model(context: dg.AssetExecutionContext, storage: Storage, mlflow: MlflowResource) -> dg.MaterializeResult:
        """Move `champion` to the challenger if its stored evaluation says the gate passed; otherwise
        record the decision to keep the champion. A refusal is the gate working, not a failed run."""
        name = model_name(spec)
        challenger = candidate_version(context, spec, storage, mlflow)
        evidence = read_evaluation(spec, storage, challenger.version)
        previous, evidence_at = evidence["champion_version"], storage.uri(evaluation_key(spec, challenger.version))
        if not evidence["passed"]:
            # The challenger alias stays: it keeps scoring in shadow until a retrain replaces it.
            reasons = [r["message"] for r in evidence["comparison"]["decision"]["rules"] if not r["passed"]]
            mlflow.describe_version(name, challenger.version, PROMOTION_SECTION,
                                    f"Not promoted ({datetime.now(timezone.utc).isoformat()[:19]}Z): the gate refused "
                                    f"it, the champion stays {f'v{previous}' if previous else 'unset'}; it keeps "
                                    f"scoring in shadow as `{CHALLENGER}` until a retrain replaces it.")
            return dg.MaterializeResult(metadata={
                "decision": f"kept v{previous}" if previous else "no champion",
                "champion_version": previous or "none", "refused_version": challenger.version,
                "refusal": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons)),
                "evidence": evidence_at,
                **evidence_links(spec, storage, evidence),
            })
        promoted_at = datetime.now(timezone.utc).isoformat()
        mlflow.set_alias(name, CHAMPION, challenger.version, {
            "promoted_at": promoted_at, "previous": previous,
            "dagster_run_id": context.run.run_id, "evidence": evidence_at,
            **evidence_links(spec, storage, evidence),
        })
        mlflow.describe_version(name, challenger.version, PROMOTION_SECTION,
                                f"Promoted to `{CHAMPION}` ({promoted_at[:19]}Z), replacing "
                                f"{f'v{previous}' if previous else 'no earlier champion'}; Dagster run "
                                f"`{context.run.run_id}`.")
        current = mlflow.version_by_alias(name, CHALLENGER)
        if current is not None and current.version == challenger.version:  # a newer retrain's challenger stays
            mlflow.client().delete_registered_model_alias(name, CHALLENGER)
        return dg.MaterializeResult(metadata={
            "decision": f"promoted v{challenger.version}", "champion_version": challenger.version,
            "mlflow_model_version": mlflow.model_version_link(name, challenger.version),
            "previous_champion": previous or "none", "challenger_mae": evidence["comparison"]["challenger"]["mae"],
            "evidence": evidence_at,
            **evidence_links(spec, storage, evidence),
        })

    return [model_evaluation, champion_model]


def build_promotion_checks(spec: UseCaseSpec) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(asset=spec.asset("model_evaluation"), name="promotion_gate", retry_policy=retry_policy(),
                    description="Whether the challenger passed every gate rule. A refusal is a WARN (the gate "
                                "deciding, not a fault): the champion asset records it and keeps the champion.")
    def promotion_gate(context: dg.AssetCheckExecutionContext, storage: Storage,
                       mlflow: MlflowResource) -> dg.AssetCheckResult:
        challenger = candidate_version(context, spec, storage, mlflow)
        evidence = read_evaluation(spec, storage, challenger.version)
        failed = [r for r in evidence["comparison"]["decision"]["rules"] if not r["passed"]]
        return dg.AssetCheckResult(
            passed=evidence["passed"], severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(r["message"] for r in failed) or "every gate rule passed",
            metadata={"challenger_version": challenger.version, "failed_rules": ", ".join(r["rule"] for r in failed)},
        )

    return [promotion_gate]


def build_rollback_job(spec: UseCaseSpec) -> dg.JobDefinition:
    class RollbackConfig(dg.Config):
        version: str
        reason: str

    @dg.op(name=f"rollback_{spec.asset('champion')}", out={}, retry_policy=retry_policy())
    def rollback(context: dg.OpExecutionContext, config: RollbackConfig, mlflow: MlflowResource):
        """Point `champion` back at an earlier version in one step; audited like a promotion."""
        from mlflow.exceptions import MlflowException

        name = model_name(spec)
        current = mlflow.version_by_alias(name, CHAMPION)
        try:
            mlflow.client().get_model_version(name, config.version)
        except MlflowException as e:  # an unknown version fails clearly, and at once; MLflow away is retried
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise dg.Failure(f"cannot roll {name} back to v{config.version}: no such version",
                                 allow_retries=False) from e
            raise
        mlflow.set_alias(name, CHAMPION, config.version, {
            "rolled_back_at": datetime.now(timezone.utc).isoformat(), "rolled_back_from": current.version if current else None,
            "reason": config.reason, "dagster_run_id": context.run.run_id,
        })
        context.log_event(dg.AssetMaterialization(spec.asset("champion_model"), metadata={
            "champion_version": config.version, "previous_champion": current.version if current else "none",
            "rollback_reason": config.reason,
        }))

    @dg.job(name=f"rollback_{spec.name}_champion", description="Move the champion alias back to a given version.")
    def rollback_job():
        rollback()

    return rollback_job
