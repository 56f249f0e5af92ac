"""The online tier under load: single-row requests at a fixed offered rate, then 1,000-row requests.

Usage (from the project root):
    .venv/bin/python benchmarks/online_load.py [--rate 500] [--seconds 20] [--big 200] [--rounds 5] [--root DIR]

A scratch lake and registry get a champion (90 days ingested, one retrain: not timed; `--root` keeps
and reuses them). The server runs as its own process (`python -m serving`, one uvicorn worker) on
loopback; the load generator (in this process: asyncio over raw keep-alive HTTP/1.1 connections, each
answer read whole) sends requests on a fixed schedule — open loop: a slow answer does not delay the next
request, and latency is measured from the moment a request was due to its answer's last byte, so a
server that falls behind is charged for the queue it builds. The generator shares the machine's cores
with the server: its CPU per request is reported beside the server's.
Rows are real validated rows of the lake, each request a different one.
Targets (issue 11): single rows at >= 500 requests/s with p99 <= 10 ms; a 1,000-row request p99 <= 20 ms.
Results: benchmarks/results/online_load.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestration.host import describe  # noqa: E402
from ml.usecases import BIKE_RENTALS  # noqa: E402
from resources.storage import LocalStorage  # noqa: E402
from serving.process import free_port, start_server  # noqa: E402
from serving.request_log import read_day  # noqa: E402
from serving.rows import RequestRows  # noqa: E402

FIRST_DAY, BOOTSTRAP_DAYS = date(2011, 1, 1), 90
URL = "http://127.0.0.1:{port}/v2/models/rental_model/infer"


def prepare(root: Path) -> None:
    """A champion on the first 90 days, in a child process (the simulation's own stores)."""
    if (root / "mlflow.db").exists():
        return
    cutoff = (FIRST_DAY + timedelta(days=BOOTSTRAP_DAYS)).isoformat()
    code = ("import sys; from pathlib import Path; from orchestration.simulation import Simulation; "
            f"sim = Simulation.fresh(Path({str(root)!r})); sim.bootstrap({FIRST_DAY.isoformat()!r}, {cutoff!r}); "
            "sys.exit(0 if sim.retrains[0]['promoted'] else 1)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)


@contextmanager
def scratch_root(root: Path | None) -> Iterator[Path]:
    """`root` (kept) or a temporary folder (removed after), holding a champion (`prepare`)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = root or Path(tmp) / "sim"
        prepare(root)
        yield root


ROOT_HELP = "scratch lake and registry to create or reuse"


def champion_onnx(root: Path) -> tuple[str, bytes]:
    """The scratch registry's champion: its version and its registered ONNX bytes."""
    from resources.mlflow_tracking import CHAMPION, MlflowResource

    mlflow = MlflowResource(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "artifacts"))
    version = mlflow.version_by_alias("rental_model", CHAMPION).version
    return version, mlflow.load_onnx("rental_model", version)


def validated_rows(root: Path) -> pl.DataFrame:
    """Every validated row of the scratch lake."""
    return pl.concat([pl.read_parquet(p) for p in sorted((root / "lake/rentals/validated").glob("*.parquet"))])


def bodies(root: Path, rows: int, count: int) -> list[bytes]:
    """`count` request bodies of `rows` real validated rows each, drawn from the lake's days."""
    validated = validated_rows(root)
    request_rows = RequestRows(BIKE_RENTALS)
    rng = np.random.default_rng(0)
    return [json.dumps(request_rows.request(validated[rng.integers(0, validated.height, rows)])).encode()
            for _ in range(count)]


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection, one request at a time, its answer read whole (Content-Length).
    aiohttp's client cost ~0.5 ms of CPU per request on the cores the server uses; this costs a fraction."""

    def __init__(self):
        self.transport, self.answer, self.buffer, self.head = None, None, bytearray(), None

    def connection_made(self, transport):
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future:
        self.answer, self.buffer, self.head = asyncio.get_running_loop().create_future(), bytearray(), None
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes):
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
            self.head, self.buffer = (int(lines[0].split()[1]), length), self.buffer[end + 4:]
        status, length = self.head
        if len(self.buffer) >= length and not self.answer.done():
            self.answer.set_result((status, bytes(self.buffer[:length])))

    def connection_lost(self, exc):
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("the server closed the connection"))


async def run_load(url: str, payloads: list[bytes], rate: float, seconds: float, connections: int) -> dict:
    """Send `rate` requests per second for `seconds`, each due at its own time, on `connections` keep-alive
    connections (a request waits for a free one); latency from due to the answer's last byte."""
    latencies, seconds_due, failures, versions = [], [], 0, set()
    total = int(rate * seconds)
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            "content-length: {}\r\n\r\n")
    requests = [head.format(len(p)).encode() + p for p in payloads]

    async def connect() -> _Connection:
        return (await loop.create_connection(_Connection, parts.hostname, parts.port))[1]

    free: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await connect())
    started = time.perf_counter()

    async def one(i: int, due: float) -> None:
        nonlocal failures
        connection = await free.get()
        try:
            status, body = await connection.send(requests[i % len(requests)])
        except ConnectionError:
            failures += 1
            free.put_nowait(await connect())
            return
        free.put_nowait(connection)
        if status != 200:
            failures += 1
            return
        latencies.append((time.perf_counter() - due) * 1000)
        seconds_due.append(int(i / rate))
        versions.add(json.loads(body)["model_version"])

    # Each request starts when it is due (not 10,000 tasks made up front: making them took the generator's
    # loop ~100 ms, charged to the first requests as if the server had been slow).
    tasks = []
    for i in range(total):
        due = started + i / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not free.empty():
        free.get_nowait().transport.close()
    ms = np.array(latencies)
    return {"offered_rps": rate, "seconds": seconds, "requests": total, "ok": len(latencies), "failed": failures,
            "achieved_rps": len(latencies) / elapsed, "versions": sorted(versions),
            **{f"p{q}_ms": float(np.percentile(ms, q)) if ms.size else None for q in (50, 90, 99)},
            "max_ms": float(ms.max()) if ms.size else None,
            # p99 and max of the requests due in each second: a warm-up or a periodic stall shows here
            "per_second": [{"second": int(k), "p99_ms": float(np.percentile(ms[np.array(seconds_due) == k], 99)),
                            "max_ms": float(ms[np.array(seconds_due) == k].max())} for k in sorted(set(seconds_due))]}


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(name: str, url: str, payloads: list[bytes], rate: float, seconds: float, server: int,
          connections: int) -> dict:
    load, cpu, own = os.getloadavg(), cpu_seconds(server), own_cpu_seconds()
    gc.collect()
    gc.disable()  # a full collection of this process would stall the generator and be charged to the server
    try:
        result = asyncio.run(run_load(url, payloads, rate, seconds, connections))
    finally:
        gc.enable()
    result.update(phase=name, rows_per_request=json.loads(payloads[0])["inputs"][0]["shape"][0],
                  load_before=[round(x, 2) for x in load], load_after=[round(x, 2) for x in os.getloadavg()],
                  server_cpu_per_request_ms=(cpu_seconds(server) - cpu) * 1000 / max(result["ok"], 1),
                  generator_cpu_per_request_ms=(own_cpu_seconds() - own) * 1000 / max(result["ok"], 1))
    print(json.dumps(result), flush=True)
    return result


def server_latency(root: Path) -> list[dict]:
    """The server's own time per request (body received to response ready), from its request log."""
    storage = LocalStorage(root=str(root / "lake"))
    if not (root / "lake/rentals/online_log").exists():  # SERVING_LOG_SAMPLE=0: nothing logged
        return []
    days = sorted(p.name for p in (root / "lake/rentals/online_log").iterdir())
    requests = pl.concat([read_day(BIKE_RENTALS, storage, day) for day in days]).unique("request_id")
    return requests.group_by("request_rows").agg(
        pl.len().alias("requests"), *(pl.col("latency_ms").quantile(q / 100).alias(f"p{q}_ms") for q in (50, 90, 99)),
    ).sort("request_rows").to_dicts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--big", type=int, default=200, help="1,000-row requests, sent at --big-rate per second")
    parser.add_argument("--big-rate", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both phases against the same server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--root", type=Path, help=ROOT_HELP)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/online_load")
    args = parser.parse_args()
    with scratch_root(args.root) as root, tempfile.TemporaryDirectory() as tmp:
        if (root / "lake/rentals/online_log").exists():  # a reused root: only this run's requests
            subprocess.run(["rm", "-rf", str(root / "lake/rentals/online_log")], check=True)
        singles, big = bodies(root, 1, 5000), bodies(root, 1000, 20)
        port = free_port()
        env = {**os.environ, "LAKE_ROOT": str(root / "lake"), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
               "MLFLOW_ARTIFACT_ROOT": str(root / "artifacts")}
        server = start_server(env, port, "--use-case", "rentals", log=Path(tmp) / "server.log")
        rounds = []
        try:
            url = URL.format(port=port)
            phase("warm-up", url, singles, 200, 3, server.pid, args.connections)
            for _ in range(args.rounds):
                rounds.append([phase("single row", url, singles, args.rate, args.seconds, server.pid, args.connections),
                               phase("1,000 rows", url, big, args.big_rate, args.big / args.big_rate, server.pid, 4)])
        finally:
            server.terminate()
            server.wait(60)
        logged = server_latency(root)
    write(args, rounds, logged)


def met(result: dict) -> bool:
    """A phase's target (issue 11). Open loop: the offered rate was sent on schedule whatever the answers,
    so the server kept up when every request was answered within the p99 bar. (The achieved rate divides
    by the time to the last answer, so it reads a hair under the offered one even then.)"""
    if result["rows_per_request"] == 1:
        return result["offered_rps"] >= 500 and result["ok"] == result["requests"] and result["p99_ms"] <= 10
    return result["p99_ms"] <= 20 and not result["failed"]


def median_round(results: list[dict]) -> dict:
    """One phase over the rounds: the median of each round's figures, failures summed."""
    return {**{k: results[0][k] for k in ("phase", "rows_per_request", "offered_rps", "seconds")},
            **{k: sum(r[k] for r in results) for k in ("requests", "ok", "failed")},
            **{k: float(np.median([r[k] for r in results]))
               for k in ("achieved_rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "server_cpu_per_request_ms",
                         "generator_cpu_per_request_ms")}}


def write(args, rounds: list[list[dict]], logged: list[dict]) -> None:
    phases = [median_round([r[k] for r in rounds]) for k in range(2)]
    targets = (">= 500 req/s, p99 <= 10 ms", "p99 <= 20 ms")

    def row(name: str, r: dict, target: str) -> str:
        return (f"| {name} | {r['offered_rps']:g} | {r['achieved_rps']:.0f} | {r['ok']} | {r['failed']} | "
                f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | "
                f"{r['server_cpu_per_request_ms']:.2f} | {r['generator_cpu_per_request_ms']:.2f} | {target} |")

    lines = [
        "# Online tier under load", "",
        f"Command: `.venv/bin/python benchmarks/online_load.py --rate {args.rate:g} --seconds {args.seconds:g} "
        f"--big {args.big} --rounds {len(rounds)}`  ",
        f"Machine: {describe()}, shared with the load generator (same machine, loopback); "
        f"{time.strftime('%Y-%m-%d %H:%M')}", "",
        "Latency is measured by the client from the moment each request was due (open loop). One server, "
        f"{len(rounds)} rounds of both phases; a p99 of one round is the 2nd-3rd slowest of its 200 large "
        "requests, which the host's noise moves by a few ms from round to round, so the target is judged on "
        "the median round (the machine is noisy: medians), and every round is listed.", "",
        "| phase | offered req/s | achieved req/s | ok | failed | p50 ms | p90 ms | p99 ms | max ms "
        "| server CPU ms/request | generator CPU ms/request | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *[row(f"{r['phase']}, median of {len(rounds)} rounds", r,
              f"{target} (**{'met' if met(r) else 'missed'}**; met in "
              f"{sum(met(x[k]) for x in rounds)} of {len(rounds)} rounds)")
          for k, (r, target) in enumerate(zip(phases, targets))],
        *[row(f"{r['phase']}, round {i + 1}", r, "met" if met(r) else "missed")
          for k in range(2) for i, r in enumerate(x[k] for x in rounds)], "",
        "## The server's own time per request (from its request log: body received to response ready)", "",
        "| rows per request | requests | p50 ms | p90 ms | p99 ms |", "|---:|---:|---:|---:|---:|",
        *[f"| {r['request_rows']} | {r['requests']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} |"
          for r in logged],
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(
        {"phases": phases, "rounds": rounds, "server_latency": logged,
         "met": {"single": met(phases[0]), "big": met(phases[1])}}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
