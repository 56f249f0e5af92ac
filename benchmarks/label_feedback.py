"""Label feedback rules re-scored on a replay's stored estimates: development days against test days.

Usage (from the project root, after the replays):
    .venv/bin/python -m orchestration.replay && .venv/bin/python -m orchestration.replay seoul_bikes
    .venv/bin/python benchmarks/label_feedback.py [--out benchmarks/results/label_feedback.md]

Each replay's lake keeps, per labelled day, the uncorrected DLE estimate (`estimated_mae_dle` in the
drift report), the realized MAE and the serving version (the performance report). The label feedback
only scales the estimate (`ml.performance_estimate.LabelFeedback`), so any rule can be applied to those
days afterwards, day by day, from the labelled days the drift report reads for it
(`assets.monitoring.labelled_history`): the estimates a replay would have stored under that rule, as long as the rule
does not change a retrain decision (a replay run with the rule tells). Compared: the shipped rule (the
serving model's own days, from `min_days`) at several `min_days`, and the rule it replaced (until the
serving model had 3 days of its own, the latest 28 days of any model). Development days are bike 2011
and Seoul before 2018-07-01 (the split of `benchmarks/tree_capacity.py`); the rest are test days.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assets.monitoring import labelled_history  # noqa: E402
from ml.performance_estimate import LabelFeedback  # noqa: E402
from ml.usecases import USE_CASES  # noqa: E402
from orchestration.host import result_header, write_result  # noqa: E402
from orchestration.replay import estimate_error  # noqa: E402
from resources.storage import LocalStorage  # noqa: E402

REPLAYS = (("rentals", "var/replay", "2012-01-01"), ("seoul_bikes", "var/replay_seoul_bikes", "2018-07-01"))


@dataclass(frozen=True)
class LendingFeedback(LabelFeedback):
    """The rule before 2026-12-04: until the serving model has `min_days` labelled days of its own, the
    latest `max_days` labelled days of any model stand in."""

    min_days: int = 3

    def scale(self, realized, estimated, own=None) -> tuple[float, int]:
        real, est = np.asarray(realized, dtype=np.float64), np.asarray(estimated, dtype=np.float64)
        mine = LabelFeedback.scale(self, real, est, own)
        if mine[1] >= self.min_days:
            return mine
        return LabelFeedback.scale(self, real, est, None)


@dataclass(frozen=True)
class StoredDay:
    """A labelled day of a replay: its realized MAE, its uncorrected estimate and the labelled days before
    it as the drift report read them (realized, uncorrected estimated, served by the same version)."""

    day: str
    realized: float
    dle: float
    history: tuple[list[float], list[float], list[bool]]


def stored_days(use_case: str, root: Path) -> list[StoredDay]:
    """The replay's labelled days with a stored estimate, oldest first (a performance report carries the
    estimate its day was given)."""
    spec, lake = USE_CASES[use_case], LocalStorage(root=str(root / "lake"))
    days = []
    for key in lake.list_keys(f"{spec.name}/performance/"):
        report = lake.read_json(key)
        if report.get("mae") is not None and report.get("estimated_mae_dle") is not None:
            days.append(StoredDay(report["day"], report["mae"], report["estimated_mae_dle"],
                                  labelled_history(spec, lake, report["day"], report["model_version"])))
    if not days:
        raise SystemExit(f"{root}: no labelled days with a stored estimate; run the replay of {use_case} first")
    return days


def rescored(days: list[StoredDay], feedback: LabelFeedback | None) -> np.ndarray:
    """Each day's estimate under `feedback` (None: uncorrected)."""
    return np.array([d.dle * (feedback.scale(*d.history)[0] if feedback else 1.0) for d in days])


def accuracy(estimate: np.ndarray, real: np.ndarray) -> str:
    error = estimate_error(estimate, real)
    return f"{error['median_abs_rel_error']:.3f} / {error['correlation']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/label_feedback.md")
    args = parser.parse_args()
    rules = {"own days only, from 1": LabelFeedback(min_days=1), "own days only, from 2 (shipped)": LabelFeedback(),
             "own days only, from 3": LabelFeedback(min_days=3), "own days only, from 5": LabelFeedback(min_days=5),
             "lend the latest 28 days until 3 own (before)": LendingFeedback(), "no feedback": None}
    lines = result_header("Label feedback rules re-scored on the replays' stored estimates",
                          ".venv/bin/python benchmarks/label_feedback.py")
    lines += ["Median relative error / correlation of the estimated against the realized daily MAE.", ""]
    for use_case, root, split in REPLAYS:
        days = stored_days(use_case, ROOT / root)
        real = np.array([d.realized for d in days])
        dev = np.array([d.day < split for d in days])
        lines += [f"## {use_case} ({root}): development days before {split} ({dev.sum()}), test days from it "
                  f"({(~dev).sum()})", "", "| rule | development | test | all |", "|---|---|---|---|"]
        for name, feedback in rules.items():
            est = rescored(days, feedback)
            lines.append(f"| {name} | {accuracy(est[dev], real[dev])} | {accuracy(est[~dev], real[~dev])} | "
                         f"{accuracy(est, real)} |")
        lines.append("")
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
