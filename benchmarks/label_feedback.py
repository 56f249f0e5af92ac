"""Label feedback rules re-scored on a replay's stored estimates: development days against test days.

Usage (from the project root, after the replays):
    .venv/bin/python -m orchestration.replay && .venv/bin/python -m orchestration.replay seoul_bikes
    .venv/bin/python benchmarks/label_feedback.py [--out benchmarks/results/label_feedback.md]

Each replay's lake keeps, per labelled day, the uncorrected DLE estimate (`estimated_mae_dle` in the
drift report), the realized MAE and the serving version (the performance report). The label feedback
only scales the estimate (`ml.performance_estimate.LabelFeedback`), so any rule can be applied to those
days afterwards, day by day from the days before each, exactly as the drift report applies it (the
same 60-day look-back): the estimates a replay would have stored under that rule, as long as the rule
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

from ml.performance_estimate import LabelFeedback  # noqa: E402
from ml.usecases import USE_CASES  # noqa: E402
from orchestration.host import result_header, write_result  # noqa: E402
from resources.storage import LocalStorage  # noqa: E402

LOOK_BACK_DAYS = 60  # assets.monitoring.labelled_history's default
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


def stored_days(use_case: str, root: Path) -> dict[str, np.ndarray]:
    """Per labelled day, oldest first: day, realized MAE, uncorrected estimate, serving version."""
    spec, lake = USE_CASES[use_case], LocalStorage(root=str(root / "lake"))
    rows = []
    for key in lake.list_keys(f"{spec.name}/performance/"):
        day = key.rsplit("/", 1)[1].removesuffix(".json")
        performance, drift = lake.read_json(key), lake.read_json(f"{spec.name}/drift/{day}.json")
        if performance.get("mae") is not None and drift.get("estimated_mae_dle") is not None:
            rows.append((day, performance["mae"], drift["estimated_mae_dle"], performance["model_version"]))
    if not rows:
        raise SystemExit(f"{root}: no labelled days with a stored estimate; run the replay of {use_case} first")
    day, real, dle, version = zip(*rows)
    return {"day": np.array(day), "real": np.array(real), "dle": np.array(dle), "version": np.array(version)}


def rescored(days: dict[str, np.ndarray], feedback: LabelFeedback) -> np.ndarray:
    """Each day's estimate under `feedback`, from the labelled days of the `LOOK_BACK_DAYS` before it."""
    dates = days["day"].astype("datetime64[D]")
    out = np.empty(dates.size)
    for i, today in enumerate(dates):
        before = (dates < today) & (dates >= today - LOOK_BACK_DAYS)
        scale, _ = feedback.scale(days["real"][before], days["dle"][before], days["version"][before] == days["version"][i])
        out[i] = days["dle"][i] * scale
    return out


def accuracy(estimate: np.ndarray, real: np.ndarray) -> str:
    error = np.median(np.abs(estimate - real) / real)
    return f"{error:.3f} / {np.corrcoef(estimate, real)[0, 1]:.3f}"


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
        dev = days["day"] < split
        lines += [f"## {use_case} ({root}): development days before {split} ({dev.sum()}), test days from it "
                  f"({(~dev).sum()})", "", "| rule | development | test | all |", "|---|---|---|---|"]
        for name, feedback in rules.items():
            est = days["dle"] if feedback is None else rescored(days, feedback)
            lines.append(f"| {name} | {accuracy(est[dev], days['real'][dev])} | "
                         f"{accuracy(est[~dev], days['real'][~dev])} | {accuracy(est, days['real'])} |")
        lines.append("")
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
