"""Hyper-parameter search with Optuna TPE under a trial and a time budget.

Each finished trial is reported through ``on_trial`` so the caller can log it (e.g. to MLflow)
without this module knowing about any tracker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from ml.models import FAMILIES, make_model

TrialCallback = Callable[[int, dict[str, Any], float], None]  # (trial_number, params, validation MAE)


def _trees_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 500, step=50),  # capped: scoring cost grows with trees
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 63),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 60, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.6, 1.0),
    }


def _mlp_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "hidden": trial.suggest_categorical("hidden", [32, 64, 128]),
        "layers": trial.suggest_int("layers", 1, 3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
    }


SEARCH_SPACES: dict[str, Callable[[optuna.Trial], dict[str, Any]]] = {"trees": _trees_space, "mlp": _mlp_space}


def tune(
    family: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    n_trials: int,
    timeout_s: float,
    seed: int = 0,
    base_params: dict[str, Any] | None = None,
    on_trial: TrialCallback | None = None,
) -> dict[str, Any]:
    """Minimise validation MAE; returns the full params (``base_params`` overlaid with the best trial's).

    ``seed`` seeds the sampler and, unless ``base_params`` sets one, every trial's model, so a rerun
    proposes and scores the same trials.

    Stops after ``n_trials`` or once ``timeout_s`` has passed, whichever comes first (a trial
    already running when time is up finishes).
    """
    if family not in FAMILIES or family not in SEARCH_SPACES:
        raise ValueError(f"no search space for family {family!r}; known: {sorted(SEARCH_SPACES)}")
    base = {"seed": seed} | dict(base_params or {})

    def objective(trial: optuna.Trial) -> float:
        model = make_model(family, base | SEARCH_SPACES[family](trial))
        model.fit(X_train, y_train, X_val, y_val)
        return float(np.abs(model.predict(X_val) - np.asarray(y_val, dtype=np.float64)).mean())

    def report(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None and trial.value is not None:
            on_trial(trial.number, dict(trial.params), float(trial.value))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=[report])
    return base | study.best_params
