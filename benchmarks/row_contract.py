"""GX's row contract on one day of rentals, as GX runs it and with what checks/gx_contract.py saves.

Usage (from the project root):
    .venv/bin/python benchmarks/row_contract.py [--rounds 30] [--out benchmarks/results/row_contract.md]

`validate` on real validated days (24 rows, 38 expectations: the suite of the daily graph's
`validated_rentals_row_contract` check), three ways that alternate day by day in one process, so the
machine's swings fall on each: as GX does (every expectation's configuration rebuilt at each read, a new
ephemeral context and data source per validation), with each configuration built once per validation,
and with that plus the context and batch definition kept for the process (what ships). Medians and
ratios; the results are the same either way (tests/unit/test_gx_contract.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from checks import gx_contract
from ml.contract import split_rows
from ml.usecases import BIKE_RENTALS, replay_file
from orchestration.host import result_header, write_result

WAYS = {  # name -> (configuration built once, context kept)
    "as GX does": (False, False),
    "configuration built once": (True, False),
    "and context kept (shipped)": (True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/row_contract.md"))
    args = parser.parse_args()
    spec = BIKE_RENTALS
    validated = split_rows(spec, Path(replay_file(spec)).read_bytes(), "history").validated
    day_of = pl.col(spec.event_date).cast(pl.Date)
    built_once = gx_contract._each_configuration_built_once
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for r in range(args.rounds + 1):  # round 0 warms imports
        day = date(2011, 4, 1) + timedelta(days=r)
        frame = validated.filter(day_of == day)
        for way, (once, kept) in WAYS.items():
            gx_contract._each_configuration_built_once = built_once if once else nullcontext
            if not kept:
                gx_contract._batch_definition.cache_clear()
            started = time.perf_counter()
            outcome = gx_contract.validate(spec, frame, day, day)
            if r:
                times[way].append(time.perf_counter() - started)
            if not outcome.success:
                raise RuntimeError(f"{day}: the shipped data broke the contract: {outcome.failures}")
    gx_contract._each_configuration_built_once = built_once
    base = statistics.median(times["as GX does"])
    lines = result_header("GX's row contract on one day (24 rows, 38 expectations)",
                          f".venv/bin/python benchmarks/row_contract.py --rounds {args.rounds}")
    lines += ["| way | median ms | against GX's own way |", "|---|---:|---:|"]
    for way, seconds in times.items():
        median = statistics.median(seconds)
        lines.append(f"| {way} | {median * 1000:.1f} | {median / base:.2f}x |")
    write_result(args.out, lines)


if __name__ == "__main__":
    main()
