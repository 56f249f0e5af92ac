"""Every command block of README.md runs, in order, so a documented command cannot drift from the code.

The blocks run as written, each in `bash -euo pipefail`, in a scratch copy of the tree (the project's
files, `.venv` linked), so what they write — `var/`, the instance of `make demo`, the replays' summary
files — never touches the working tree. Each block gets a fresh lake and MLflow store (a block of
commands must work from nothing but the instance the blocks before it left), and long commands are
shortened by the knobs the README documents: `DEMO_LIVE_DAYS`, `REPLAY_LAST_DAY`, `REPLAY_RESULTS_DIR`.
A command that cannot run here is listed in SKIPPED with the reason; a block the test does not know
fails `test_the_test_knows_every_block_of_the_readme`, so a new block is run or explicitly skipped.
"""

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# Commands never run, by their exact text (a trailing comment left out), and why.
SKIPPED = {
    "make test": "runs this test suite, this test included: it would recurse",
    "DAGSTER_HOME=$PWD/var/dagster_home .venv/bin/dg dev": "a server that runs until stopped, on port 3000 of a "
                                                           "shared machine; `dg launch` and `dagster` load the same code",
    ".venv/bin/dagster dev -w workspace.yaml": "the same server from the dagster CLI",
    "dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml -n worker1 -q dagster -- --concurrency=1":
        "a worker that serves until stopped, on RabbitMQ; tests/integration/test_celery_executor.py runs two",
}

# Every block of the README in order, known by its first command, with the variables that shorten it.
BLOCKS = [
    ("make demo", {"DEMO_LIVE_DAYS": "1"}),
    (".venv/bin/python -m orchestration.replay seoul_bikes", {"REPLAY_LAST_DAY": "2018-03-01"}),
    # the first day whose labels land in the replay with `--label-delay 3`
    (".venv/bin/python -m orchestration.replay", {"REPLAY_LAST_DAY": "2011-04-04"}),
    ("source .venv/bin/activate", {}),
    (".venv/bin/dg check defs", {}),
    ("DAGSTER_HOME=$PWD/var/dagster_home .venv/bin/dg dev", {}),
    ("export DAGSTER_HOME=$PWD/var/dagster_home", {}),
]

# Variables of the machine's environment that would point a command at another instance, lake, registry,
# source or sink; the commands get the README's defaults instead.
FOREIGN = ("LAKE_", "AWS_", "DAGSTER_", "MLFLOW_", "RENTALS_", "SEOUL_", "LANDING_", "ALERT_", "REPLAY_", "DEMO_",
           "ML_FAILPOINT", "VIRTUAL_ENV", "PYTHONPATH")


def readme_blocks(text: str) -> list[list[str]]:
    """The commands of each ```bash block and each indented code block, in order; a command is one
    line with its backslash continuations joined, comment lines left out."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            j = lines.index("```", i + 1)
            blocks.append(lines[i + 1:j])
            i = j + 1
        elif lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and lines[j].startswith("    "):
                j += 1
            blocks.append([line[4:] for line in lines[i:j]])
            i = j
        else:
            i += 1
    return [commands(block) for block in blocks]


def commands(block: list[str]) -> list[str]:
    out, pending = [], ""
    for line in block:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line
        if line.endswith("\\"):
            pending += "\n"
            continue
        out.append(pending)
        pending = ""
    return out


def bare(command: str) -> str:
    """The command without a trailing `  # comment`."""
    return re.sub(r"\s+#\s.*$", "", command).strip()


def test_the_test_knows_every_block_of_the_readme():
    found = [bare(block[0]) for block in readme_blocks(README.read_text())]
    assert found == [first for first, _ in BLOCKS], "README blocks changed: run or skip them in this test"
    listed = {bare(c) for block in readme_blocks(README.read_text()) for c in block}
    assert set(SKIPPED) <= listed, f"skipped commands no longer in the README: {set(SKIPPED) - listed}"


def tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def scratch_copy(dest: Path) -> Path:
    """The project's files (tracked, or new and not ignored) with `.venv` linked; the lock file and
    pyproject.toml dated as the installed environment, so `make` does not reinstall the shared venv."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    installed = (ROOT / ".venv" / "bin" / ".installed").stat().st_mtime
    for name in ("requirements.lock", "pyproject.toml"):
        os.utime(dest / name, (installed, installed))
    return dest


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Every block run in order; for each, its commands, return code, output and seconds."""
    root = tmp_path_factory.mktemp("readme")
    tree = scratch_copy(root / "tree")
    results_before = tree_hash(ROOT / "benchmarks" / "results")
    base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    base.update(VIRTUAL_ENV=str(tree / ".venv"), PYTHONPATH=str(tree), REPLAY_RESULTS_DIR=str(root / "results"),
                DAGSTER_CONSOLE_LOG_LEVEL="WARNING")
    out = []
    for i, (block, (first, knobs)) in enumerate(zip(readme_blocks(README.read_text()), BLOCKS)):
        run = [c for c in block if bare(c) not in SKIPPED]
        stores = root / f"block{i}"
        env = {**base, **knobs, "LAKE_ROOT": str(stores / "lake"), "MLFLOW_TRACKING_URI": f"sqlite:///{stores}/mlflow.db",
               "MLFLOW_ARTIFACT_ROOT": str(stores / "artifacts")}
        started = time.perf_counter()
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(run)], cwd=tree, env=env,
                                capture_output=True, text=True, timeout=900) if run else None
        out.append({"first": first, "commands": run, "stores": stores, "seconds": time.perf_counter() - started,
                    "returncode": result.returncode if result else 0,
                    "output": (result.stdout + result.stderr) if result else ""})
    return {"blocks": out, "root": root, "tree": tree, "results_before": results_before}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("first", [first for first, _ in BLOCKS])
def test_each_block_runs(ran, first):
    block = next(b for b in ran["blocks"] if b["first"] == first)
    if not block["commands"]:
        pytest.skip(f"every command of the block is listed in SKIPPED: {SKIPPED[first]}")
    assert block["returncode"] == 0, f"{first} ... failed after {block['seconds']:.0f} s:\n{block['output'][-4000:]}"


@pytest.mark.integration
@pytest.mark.slow
def test_the_commands_did_what_the_readme_says(ran):
    blocks = {b["first"]: b for b in ran["blocks"]}
    assert "champion trained on 2011-01-01..2011-03-31; lived 1 days from 2011-04-01" in blocks["make demo"]["output"]
    results = ran["root"] / "results"
    assert {p.name for p in results.iterdir()} >= {f"replay{s}.{x}" for s in ("", "_delay3", "_seoul_bikes")
                                                   for x in ("md", "json", "png")}
    # The CLI sequence from an empty lake: the backfill built the features the first champion trains on,
    # the day was scored and monitored, and the rollback ran.
    lake = blocks["export DAGSTER_HOME=$PWD/var/dagster_home"]["stores"] / "lake" / "rentals"
    assert len(list((lake / "features").glob("2011-0[1-3]-*.parquet"))) == 90
    assert (lake / "drift" / "2011-04-01.json").exists() and (lake / "performance" / "2011-04-01.json").exists()
    assert (ran["tree"] / "var" / "dagster_home" / "dagster.yaml").exists()  # the demo's instance, in the copy


@pytest.mark.integration
@pytest.mark.slow
def test_the_working_tree_results_are_untouched(ran):
    assert tree_hash(ROOT / "benchmarks" / "results") == ran["results_before"]
