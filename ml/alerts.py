"""Alerts grouped by root cause: one upstream problem raises one alert, its downstream symptoms attached.

A contract breach on raw data and the drift it causes downstream are one problem, not two pages.
Signals of the same partition are grouped along the asset lineage: a signal whose asset has an
upstream signal in the same partition becomes a symptom of it. Each alert goes to the owner of its
root-cause asset and lists every feature involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Signal:
    partition: str  # the day; "run <id>" for signals of un-partitioned runs, so a run groups its own
    asset: str
    kind: str  # contract_breach, freshness, run_failure, check_failed, drift, performance, gate_refused
    detail: str
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Alert:
    partition: str
    root: Signal
    owner: str
    symptoms: tuple[Signal, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """Stable identity: one alert per partition and cause, never sent twice."""
        return f"{self.partition}|{self.root.asset}|{self.root.kind}"

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(sorted({f for s in (self.root, *self.symptoms) for f in s.features}))

    def text(self) -> str:
        head = f"[{self.root.kind}] {self.root.asset} {self.partition or ''}: {self.root.detail}".strip()
        lines = [head, f"owner: {self.owner}"]
        if self.features:
            lines.append(f"features: {', '.join(self.features)}")
        lines += [f"  symptom [{s.kind}] {s.asset}: {s.detail}" for s in self.symptoms]
        return "\n".join(lines)


# Kinds in causal order, and which kinds a later kind is a symptom of when both hit one partition:
# a performance drop on a day whose inputs drifted is the drift's consequence, not news.
KINDS = ("contract_breach", "freshness", "check_failed", "run_failure", "drift", "performance", "gate_refused")
SYMPTOM_OF = {"performance": {"drift"}, "run_failure": {"check_failed", "contract_breach", "freshness"}}


def group(signals: list[Signal], upstream: Mapping[str, set[str]], owners: Mapping[str, str]) -> list[Alert]:
    """`upstream[a]` holds every asset a depends on, transitively; roots are taken upstream-first."""
    depth = {a: len(u) for a, u in upstream.items()}
    rank = {k: i for i, k in enumerate(KINDS)}
    # Causal kind first, then lineage depth: a failed check explains its run's failure even though
    # a job name has no place in the asset lineage.
    ordered = sorted(signals, key=lambda s: (s.partition, rank.get(s.kind, len(KINDS)), depth.get(s.asset, 0), s.asset))
    roots: dict[str, list[Signal]] = {}
    symptoms: dict[int, list[Signal]] = {}
    for s in ordered:
        candidates = roots.setdefault(s.partition, [])
        parent = next((r for r in candidates if r.asset in upstream.get(s.asset, set())
                       or r.kind in SYMPTOM_OF.get(s.kind, ())), None)
        if parent is None:
            same = next((r for r in candidates if r.asset == s.asset and r.kind == s.kind), None)
            if same is None:
                candidates.append(s)
            else:
                symptoms.setdefault(id(same), []).append(s)
        else:
            symptoms.setdefault(id(parent), []).append(s)
    return [
        Alert(p, r, owners.get(r.asset, "unowned"), tuple(symptoms.get(id(r), ())))
        for p, rs in roots.items() for r in rs
    ]


def episode_starts(flags: list[bool], persistence: int) -> bool:
    """True on the day a condition has held for exactly `persistence` days in a row.

    `flags` are the last days oldest first (a missing day counts as False). A drift or performance
    episode pages once, when it becomes actionable, not again on every day it lasts.
    """
    streak = 0
    for flag in reversed(flags):
        if not flag:
            break
        streak += 1
    return streak == persistence
