"""The host a benchmark ran on, named in its results: the project's figures come from 2-core machines
whose CPUs differ, and the CPU moves them (the same replay took 12.7 min on an AMD EPYC and 9.8 min on an
Intel Xeon with AVX-512)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def describe() -> str:
    """CPU model, cores and memory, e.g. `Intel(R) Xeon(R) Processor, 2 cores, 24 GiB RAM`."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), platform.processor())
    meminfo = Path("/proc/meminfo")
    total = next((line.split()[1] for line in meminfo.read_text().splitlines() if line.startswith("MemTotal")),
                 None) if meminfo.exists() else None
    memory = f", {int(total) / 2**20:.0f} GiB RAM" if total else ""
    return f"{cpu}, {os.cpu_count()} cores{memory}"


def result_header(title: str, command: str) -> list[str]:
    """The first lines of a benchmark's markdown result: what ran, on which host, when."""
    return [f"# {title}", "", f"Command: `{command}`  ",
            f"Machine: {describe()}; {time.strftime('%Y-%m-%d %H:%M')}", ""]


def write_result(path: Path, lines: list[str]) -> None:
    """Write a benchmark's markdown result and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
