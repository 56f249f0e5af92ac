"""Training set and candidate model: point-in-time data in, a registered ONNX challenger out."""

import hashlib
import json
import time

import dagster as dg
import polars as pl

from assets.common import OWNERS, fails_for_good, lake_uri, markdown_table, retry_policy, stage_days, table_metadata
from assets.features import load_days, present_days
from ml.features import feature_names
from ml.spec import UseCaseSpec
from ml.training import train_candidate
from ml.training_set import Window, snapshot_digest, split_by_time
from resources.checkpoints import StorageCheckpoints
from resources.mlflow_tracking import CHALLENGER, MlflowResource, RegisteredVersion, code_version
from resources.storage import Storage


class TrainingWindowConfig(dg.Config):
    cutoff: str = ""  # first day left out; empty = the day after the newest features partition
    window_days: int = 90
    validation_days: int = 14
    holdout_days: int = 14
    min_share: float = 0.8  # the window needs data on at least this share of its days (gaps are passed over)


class CandidateConfig(dg.Config):
    family: str = "trees"  # a name in ml.models.FAMILIES: trees | mlp
    params_json: str = "{}"  # overrides of the family's defaults
    tune_trials: int = 0  # > 0 runs an Optuna search first, each trial logged to MLflow
    tune_timeout_s: float = 120.0
    seed: int = 0
    recency_half_life_days: float = 0.0  # > 0 weights each row 0.5 ** (age / half-life) (trees family)
    force: bool = False  # train even if this recipe was already registered on these data (e.g. to test reproducibility)


JUDGED_MODEL_ARTIFACT = "judged_model.onnx"  # the fit the gate judges; the registered version is the refit
LOSS_ESTIMATOR_ARTIFACT = "loss_estimator.json"
TRAINING_SET_TAG = "training_set"  # the version's training-set pointer in the lake
TRAINING_SET_URI_TAG = "training_set_uri"  # the same pointer as a URI (file:// or s3://), for a reader
TRAINING_DATA_URI_TAG = "training_data_uri"  # the parquet file the pointer names, as a URI
RECIPE_TAG = "recipe"  # digest of data, candidate configuration and code: equal recipes give equal models
RETRAIN_REASON_TAG = "retrain/reason"  # the run tag a retrain is launched with (sensor, schedule)
EPOCH_METRICS = ("train_loss", "val_loss")  # per epoch, step = epoch; the judged fit's are prefixed judged_


def retrain_id(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    """A retrain's identity: its run's root, so a re-execution of a failed retrain continues it."""
    run = context.run
    return run.root_run_id or run.run_id


def retrain_key(spec: UseCaseSpec, retrain: str, what: str) -> str:
    """What one retrain hands from step to step (`training_set`, `candidate`), never shared between runs:
    two retrains at once each read their own."""
    return f"{spec.name}/retrains/{retrain}/{what}.json"


def load_training_set(spec: UseCaseSpec, storage: Storage, pointer_key: str) -> tuple[dict, pl.DataFrame]:
    pointer = storage.read_json(pointer_key)
    return pointer, storage.read_parquet(pointer["key"])


def model_name(spec: UseCaseSpec) -> str:
    return spec.asset("model")


def candidate_version(context, spec: UseCaseSpec, storage: Storage, mlflow: MlflowResource) -> RegisteredVersion:
    """The version this retrain registered; a step run on its own (e.g. the gate re-run from the UI)
    acts on the current `challenger`."""
    record = retrain_key(spec, retrain_id(context), "candidate")
    if storage.exists(record):
        found = storage.read_json(record)
        return RegisteredVersion(str(found["version"]), found["run_id"])
    challenger = mlflow.version_by_alias(model_name(spec), CHALLENGER)
    if challenger is None:
        raise dg.Failure(f"no candidate in retrain {retrain_id(context)} and no '{CHALLENGER}' of {model_name(spec)}",
                         allow_retries=False)
    return challenger


def version_training_set(spec: UseCaseSpec, storage: Storage, mlflow: MlflowResource,
                         version: RegisteredVersion) -> tuple[dict, pl.DataFrame]:
    """The training set a version was fit on, named by the version's own tag."""
    tags = mlflow.client().get_model_version(model_name(spec), version.version).tags
    if TRAINING_SET_TAG not in tags:
        raise dg.Failure(f"{model_name(spec)} v{version.version} has no '{TRAINING_SET_TAG}' tag: registered "
                         "before training sets were named per version; retrain to evaluate it", allow_retries=False)
    return load_training_set(spec, storage, tags[TRAINING_SET_TAG])


def logged_model_name(spec: UseCaseSpec, family: str) -> str:
    """The LoggedModel's name in MLflow (`rentals-trees`): use case and family, not MLflow's default "model"."""
    return f"{spec.name}-{family}"


def registered_model_description(spec: UseCaseSpec) -> str:
    """The registered model's page: what it predicts, for which use case, the families, how versions are promoted."""
    from ml.models import FAMILIES

    unit = spec.column(spec.target).unit or spec.business_figure.unit
    key = " × ".join(f"`{k}`" for k in spec.key)
    evaluation, champion = spec.asset("model_evaluation"), spec.asset("champion_model")
    return "\n".join([
        f"Forecasts `{spec.target}` ({unit}) of the use case `{spec.name}`, one prediction per {key} row, from the "
        f"{len(feature_names(spec))} features of the one feature definition (`ml.features`; each version's "
        "signature names them). Served from ONNX (`model.onnx`, one float32 tensor in signature column order, "
        "output `prediction`).",
        "",
        f"Families: {', '.join(f'`{f}`' for f in FAMILIES)}; a version's `family` tag and its logged model's name "
        f"(`{logged_model_name(spec, '<family>')}`) say which.",
        "",
        "How versions are made and promoted:",
        f"- each retrain (job `retrain_{spec.name}`) trains on a window of days before a cut-off, registers the "
        f"recipe refit on every day of it as a new version and gives it the alias `{CHALLENGER}` (shadow scoring);",
        f"- the gate (`{evaluation}`) scores the challenger's and the champion's judged fits on the newest hold-out "
        "beside the seasonal-naive forecast: the challenger must beat the naive forecast and the champion's MAE, "
        "no slice may be worse beyond resampling noise, and it must fit the latency and size budgets. Each gate "
        f"is an MLflow run `gate-v<challenger>-vs-v<champion>` in the experiment `{spec.name}`;",
        f"- `{champion}` moves the alias `champion` only when the gate passed, and leaves the evidence in the "
        f"version's `champion.*` tags; rollback is the job `rollback_{spec.name}_champion`.",
        "",
        "Each version's description gives its data window, why it was trained and the gate's verdict.",
    ])


def version_description(spec: UseCaseSpec, pointer: dict, frame: pl.DataFrame, family: str, reason: str,
                        run_id: str, dagster_run: str, training_set_uri: str) -> str:
    """A version's registration section: its window and splits, why it was trained, where its data is."""
    splits = {split: (part[spec.event_date].min(), part[spec.event_date].max(), part.height)
              for (split,), part in frame.partition_by("split", as_dict=True).items()}
    split_text = "; ".join(f"{split} {first}..{last} ({rows} rows)" for split, (first, last, rows) in
                           sorted(splits.items(), key=lambda item: item[1][0]))
    missing = pointer.get("missing_days") or []
    return "\n".join([
        f"`{family}` model of `{spec.name}`, trained on the partitions {pointer['first_day']}..{pointer['last_day']} "
        f"(cut-off {pointer['cutoff']}; days without data: {', '.join(missing) if missing else 'none'}).",
        "",
        f"Why: {reason.rstrip('.')}.",
        "",
        f"Splits: {split_text}. The gate judges the recipe's fit on the days before the hold-out, scored on the "
        f"hold-out (run artifact `{JUDGED_MODEL_ARTIFACT}`); this version is the same recipe refit on every day "
        "of the window.",
        "",
        f"Data digest `{pointer['digest'][:16]}`; training set {training_set_uri}; MLflow run `{run_id}`; "
        f"Dagster run `{dagster_run}`; code `{code_version()}`.",
    ])


class EpochLog:
    """Per-epoch losses into the candidate's run, `step=epoch`: the served fit as `train_loss` / `val_loss`,
    the judged fit as `judged_train_loss` / `judged_val_loss`. Buffered and sent in batches (one request per
    ~50 epochs, and whatever is left by `flush`), not one request per epoch."""

    def __init__(self, client, run_id: str, batch: int = 100):
        self.client, self.run_id, self.batch, self.pending = client, run_id, batch, []

    def __call__(self, fit: str, epoch: int, train_loss: float, val_loss: float) -> None:
        from mlflow.entities import Metric

        prefix = "" if fit == "served" else f"{fit}_"
        now = int(time.time() * 1000)
        self.pending += [Metric(f"{prefix}{k}", float(v), now, epoch)
                         for k, v in zip(EPOCH_METRICS, (train_loss, val_loss))]
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        while self.pending:
            sent, self.pending = self.pending[:1000], self.pending[1000:]
            self.client.log_batch(self.run_id, metrics=sent)


def latest_day(spec: UseCaseSpec, storage: Storage, stage: str) -> str | None:
    days = stage_days(spec, storage, stage)
    return days[-1] if days else None


def record_candidate(context: dg.AssetExecutionContext, spec: UseCaseSpec, storage: Storage, mlflow: MlflowResource,
                     retrain: str, version: str, run_id: str) -> None:
    """How a retrain names its candidate, trained or reused: the retrain's `candidate` record (what its
    later steps act on), then the `challenger` alias (what shadow scoring and a step run alone use)."""
    storage.write_json(retrain_key(spec, retrain, "candidate"), {"version": version, "run_id": run_id})
    mlflow.set_alias(model_name(spec), CHALLENGER, version, {"run": context.run.run_id})


def prune_checkpoints(context: dg.AssetExecutionContext, checkpoints: StorageCheckpoints) -> int:
    """Called once the candidate is registered (never before: until then a retried run resumes from
    them). A failure only leaves files behind, so it is logged, not raised: failing the step now
    would retry a registration that already happened."""
    try:
        return checkpoints.prune()
    except Exception as e:  # noqa: BLE001 - the model is registered; this is tidying
        context.log.warning(f"checkpoints under {checkpoints.prefix} not pruned: {e}")
        return 0


def build_training_assets(spec: UseCaseSpec) -> list[dg.AssetsDefinition]:
    training_set_key, candidate_key = spec.asset("training_set"), spec.asset("candidate_model")

    @dg.asset(name=training_set_key, deps=[spec.asset("features")], owners=[OWNERS["training"]],
              group_name="training", kinds={"polars", "parquet"}, retry_policy=retry_policy())
    def training_set(context: dg.AssetExecutionContext, config: TrainingWindowConfig,
                     storage: Storage) -> dg.MaterializeResult:
        """The window of days before the cut-off, split by time; the newest days are the hold-out."""
        from datetime import date, timedelta

        cutoff = config.cutoff
        if not cutoff:
            latest = latest_day(spec, storage, "features")
            if latest is None:
                raise dg.Failure(f"no {spec.asset('features')} partition in the lake yet: nothing to train on",
                                 allow_retries=False)
            cutoff = (date.fromisoformat(latest) + timedelta(days=1)).isoformat()
        with fails_for_good():  # a bad cut-off, a window without enough days (NotEnoughDays): no retry
            window = Window(date.fromisoformat(cutoff), config.window_days, config.validation_days, config.holdout_days)
            # Days whose labels are still pending are features only: nothing to learn or judge on yet.
            missing = present_days(spec, storage, "features", window.day_keys())[1]
            loaded = load_days(spec, storage, "features", window.day_keys(), min_share=config.min_share)
            frame = split_by_time(spec, loaded.filter(pl.col(spec.target).is_not_null()), window)
        digest = snapshot_digest(frame)
        key = f"{spec.name}/training_sets/{digest[:16]}.parquet"
        storage.write_parquet(key, frame)
        sizes = dict(frame.group_by("split").len().iter_rows())
        # Content-addressed like the data, so the version trained on it can name it for good.
        pointer_key = key.removesuffix(".parquet") + ".json"
        storage.write_json(pointer_key, {
            "key": key, "digest": digest, "cutoff": cutoff, "first_day": window.first_day.isoformat(),
            "last_day": window.day_keys()[-1], "rows": sizes, "missing_days": missing,
        })
        storage.write_json(retrain_key(spec, retrain_id(context), "training_set"), {"pointer": pointer_key})
        return dg.MaterializeResult(metadata={
            **table_metadata(frame), "digest": digest, "partitions": f"{window.first_day} .. {window.day_keys()[-1]}",
            "cutoff": cutoff, **{f"rows_{k}": v for k, v in sizes.items()},
            "days_present": window.days - len(missing), "missing_days": ", ".join(missing) or "none",
        })

    @dg.asset(name=candidate_key, deps=[training_set_key], owners=[OWNERS["training"]], group_name="training",
              kinds={"mlflow", "onnx"}, retry_policy=retry_policy())
    def candidate_model(context: dg.AssetExecutionContext, config: CandidateConfig, storage: Storage,
                        mlflow: MlflowResource) -> dg.MaterializeResult:
        """Train, export to ONNX, prove parity, register in MLflow and mark as `challenger`."""
        import mlflow as mlf

        retrain = retrain_id(context)
        record = retrain_key(spec, retrain, "training_set")
        if not storage.exists(record):
            raise dg.Failure(f"retrain {retrain} has no training set ({storage.uri(record)}): materialize "
                             f"{training_set_key} in the same run", allow_retries=False)
        pointer_key = storage.read_json(record)["pointer"]
        pointer, frame = load_training_set(spec, storage, pointer_key)
        with fails_for_good():
            params = json.loads(config.params_json)
        # Named by the training inputs, so a retry of this step resumes from the last epoch saved.
        inputs = hashlib.sha256(json.dumps([config.family, params, config.seed, config.tune_trials],
                                           sort_keys=True).encode()).hexdigest()[:12]
        checkpoints = StorageCheckpoints(storage, f"{spec.name}/checkpoints/{pointer['digest'][:16]}-{inputs}")
        recipe = hashlib.sha256(json.dumps([pointer["digest"], config.model_dump(exclude={"force"}), code_version()],
                                           sort_keys=True).encode()).hexdigest()[:16]
        reason = context.run.tags.get(RETRAIN_REASON_TAG) or "launched by hand (the run has no retrain/reason tag)"
        tags = {"data_digest": pointer["digest"], "partitions": f"{pointer['first_day']}..{pointer['last_day']}",
                "cutoff": pointer["cutoff"], "family": config.family, "dagster_run_id": context.run.run_id,
                "retrain": retrain, TRAINING_SET_TAG: pointer_key, RECIPE_TAG: recipe,
                TRAINING_SET_URI_TAG: lake_uri(storage, pointer_key),
                TRAINING_DATA_URI_TAG: lake_uri(storage, pointer["key"]),
                "retrain_reason": reason[:500]}
        same = mlflow.client().search_model_versions(f"name = '{model_name(spec)}' and tags.{RECIPE_TAG} = '{recipe}'")
        if same and not config.force:
            # Idempotent: the same data, configuration and code were already trained and registered.
            found = str(min(int(mv.version) for mv in same))
            run_id = next(mv.run_id for mv in same if str(mv.version) == found)
            record_candidate(context, spec, storage, mlflow, retrain, found, run_id)
            # Same recipe, same inputs: what a run that registered it and died before pruning left.
            pruned = prune_checkpoints(context, checkpoints)
            return dg.MaterializeResult(metadata={
                "model_version": found, "reused": True, "recipe": recipe, "data_digest": pointer["digest"],
                "mlflow_run": mlflow.run_link(run_id),
                "mlflow_model_version": mlflow.model_version_link(model_name(spec), found), "checkpoints_pruned": pruned,
            })
        with mlflow.start_run(f"{config.family}-{pointer['cutoff']}", tags=tags, experiment=spec.name) as run:
            def log_trial(number: int, trial_params: dict, value: float) -> None:
                with mlflow.start_run(f"trial-{number}", tags={"trial": str(number)}, nested=True):
                    mlf.log_params(trial_params)
                    mlf.log_metric("validation_mae", value)

            description = version_description(spec, pointer, frame, config.family, reason, run.info.run_id,
                                              context.run.run_id, tags[TRAINING_SET_URI_TAG])
            # The run's page says the same (MLflow shows this tag as the run's description).
            mlf.set_tag("mlflow.note.content", description + "\n\nPer-epoch metrics (iterative families): "
                        "`train_loss` is the MSE of log1p(count) on the training rows, `val_loss` the MAE in counts "
                        "on the validation days (what early stopping watches); `judged_*` the same for the judged fit.")
            epochs = EpochLog(mlflow.client(), run.info.run_id)
            try:
                with fails_for_good():  # an unknown family, bad parameters, ONNX parity broken: no retry
                    result = train_candidate(spec, frame, config.family, params, seed=config.seed,
                                             tune_trials=config.tune_trials, tune_timeout_s=config.tune_timeout_s,
                                             recency_half_life_days=config.recency_half_life_days,
                                             on_trial=log_trial, checkpoints=checkpoints, on_epoch=epochs)
            finally:  # a failed fit keeps the losses it reached
                epochs.flush()
            mlf.log_params({**result.params, "family": config.family, "seed": config.seed,
                            "window_days": len(frame[spec.event_date].unique()),
                            "recency_half_life_days": config.recency_half_life_days})
            # holdout_* judge the recipe out of sample; served_window_* is the served fit, in sample.
            mlf.log_metrics({f"{split}_{k}": v for split, m in result.metrics.items() for k, v in m.items()})
            mlf.log_metrics({f"served_window_{k}": v for k, v in result.served_metrics.items()})
            mlf.log_dict(result.loss_estimator, LOSS_ESTIMATOR_ARTIFACT)
            mlflow.log_bytes(result.judged_onnx_bytes, JUDGED_MODEL_ARTIFACT)
            mlf.log_metrics({"parity_max_abs": result.parity.max_abs, "parity_max_rel": result.parity.max_rel,
                             "latency_ms_per_1k": result.latency_ms_per_1k, "model_size_bytes": result.size_bytes})
            mlf.log_input(mlf.data.from_pandas(frame.to_pandas(), name=training_set_key, digest=pointer["digest"][:36],
                                               targets=spec.target, source=storage.uri(pointer["key"])),
                          context="training")
            mlf.log_dict(result.importances, "feature_importance.json")
            fits = (f"judged: fit on {pointer['first_day']}..(hold-out start - 1), scored on the hold-out "
                    f"({JUDGED_MODEL_ARTIFACT}); served: the same recipe refit on {pointer['first_day']}.."
                    f"{pointer['last_day']} (this version)")
            version = mlflow.log_onnx_model(model_name(spec), result.onnx_bytes, result.input_example,
                                            tags={**tags, "run_id": run.info.run_id, "fits": fits},
                                            feature_names=feature_names(spec),
                                            logged_model_name=logged_model_name(spec, config.family),
                                            description=description)
            mlflow.describe_model(model_name(spec), registered_model_description(spec))
            record_candidate(context, spec, storage, mlflow, retrain, version, run.info.run_id)
        pruned = prune_checkpoints(context, checkpoints)  # registered: a retry can no longer need them
        importance = pl.DataFrame({"feature": list(result.importances), "mae_increase": list(result.importances.values())})
        return dg.MaterializeResult(metadata={
            "model_version": version,
            "mlflow_run": mlflow.run_link(run.info.run_id),
            "mlflow_model_version": mlflow.model_version_link(model_name(spec), version),
            "family": config.family,
            "params": result.params,
            **{f"holdout_{k}": v for k, v in result.metrics["holdout"].items()},
            "served_window_mae": result.served_metrics["mae"],
            "parity_max_abs": result.parity.max_abs,
            "parity_max_rel": result.parity.max_rel,
            "latency_ms_per_1k": result.latency_ms_per_1k,
            "model_size_bytes": result.size_bytes,
            "feature_importance": markdown_table(importance.sort("mae_increase", descending=True), 30),
            "data_digest": pointer["digest"], "reused": False, "recipe": recipe, "checkpoints_pruned": pruned,
        })

    return [training_set, candidate_model]
