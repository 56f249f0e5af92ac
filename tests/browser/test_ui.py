"""What a user sees, in a real browser: Debian's Chromium driven by Playwright (never a downloaded
browser) on the Dagster UI and the MLflow UI, both served on loopback over what a short `make demo`
produced.

The Dagster UI is `dagster dev` (what `make ui` runs): its webserver shows the pages and its daemon
records real sensor ticks, which the demo cannot (it evaluates the sensors itself and stores only
their cursors). Each check saves a full-page screenshot, named by what it shows, in SCREENSHOTS
(`artifacts/screenshots/`, or $UI_SCREENSHOTS_DIR), whether it passes or fails.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from playwright.sync_api import Page, expect, sync_playwright

from orchestration import demo
from assets.training import model_name
from ml.usecases import BIKE_RENTALS
from resources.mlflow_tracking import CHAMPION
from tests.integration.test_mlflow_server import RESOURCE_ENV, MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.getenv("UI_SCREENSHOTS_DIR", ROOT / "artifacts" / "screenshots"))
CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it
# No network here: without the background-networking flags Chromium keeps dialling Google's hosts.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
MODEL = model_name(BIKE_RENTALS)  # rental_model
LOCATION = "dagster_ml_reference"  # workspace.yaml's code location
# 10 days after the bootstrap still give a champion, a refused retrain, drift and a heat map.
LIVE_DAYS = 10
LAST_DAY = (demo.FIRST_DAY + timedelta(days=demo.BOOTSTRAP_DAYS + LIVE_DAYS - 1)).isoformat()
# The lifecycle upstream of the drift report, in lineage order (left to right in the graph).
LIFECYCLE = ["raw_rentals", "validated_rentals", "rental_features", "rental_training_set", "rental_candidate_model",
             "rental_model_evaluation", "rental_champion_model", "rental_batch_predictions", "rental_drift_report"]
TICK_TIME = re.compile(r"[A-Z][a-z]{2} \d{1,2}, \d{1,2}:\d{2}:\d{2} [AP]M")  # "Dec 3, 2:12:16 AM"
TIMEOUT_MS = 120_000  # a loaded 2-core machine: first loads of a page can take tens of seconds


class DagsterDev(MlflowServer):
    """`dagster dev` as its own process group (MlflowServer's start, readiness and log; the webserver
    answers /health once it serves). Stopped as by Ctrl-C, which it forwards to its webserver, daemon
    and code server; SIGTERM it ignores."""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        super().stop()  # whatever of the group is left


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory) -> dict:
    """`make demo` on LIVE_DAYS days, everything (instance, lake, registry) in a scratch folder; the
    environment the UIs are then started with."""
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in RESOURCE_ENV}
    env.update(DAGSTER_HOME=str(home), LAKE_ROOT=str(root / "lake"), MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db",
               MLFLOW_ARTIFACT_ROOT=str(root / "artifacts"), ALERT_SINK="log", DEMO_LIVE_DAYS=str(LIVE_DAYS))
    log = root / "demo.log"
    with open(log, "wb") as out:
        done = subprocess.run([sys.executable, "-m", "orchestration.demo"], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=1200)
    assert done.returncode == 0, f"the demo failed; its log ends with:\n{tail(log)}"
    return {**env, "ROOT": str(root)}


@pytest.fixture(scope="module")
def servers(demo_env):
    """The Dagster UI (`dagster dev`) and the MLflow UI on the demo's stores, on free loopback ports."""
    root, bin_dir = Path(demo_env["ROOT"]), Path(sys.executable).parent
    dagster = DagsterDev([str(bin_dir / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"), "--host", "127.0.0.1"],
                         demo_env, root / "dagster-dev.log")
    # Job execution (GenAI scorers, trace rollups) is not used and would start more processes.
    mlflow = MlflowServer([str(bin_dir / "mlflow"), "server", "--backend-store-uri", demo_env["MLFLOW_TRACKING_URI"],
                           "--default-artifact-root", demo_env["MLFLOW_ARTIFACT_ROOT"], "--host", "127.0.0.1",
                           "--workers", "1"],
                          {**demo_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, root / "mlflow-server.log")
    try:
        dagster.wait_ready(300)
        mlflow.wait_ready(300)
        yield {"dagster": dagster, "mlflow": mlflow}
    finally:
        for server in (dagster, mlflow):
            server.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright; missing, the test fails (CI installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`, as .ci/run does)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def open_page(browser):
    """A fresh page of the given size; Dagster's one-time "Join the community" dialog marked as seen,
    so it covers no screenshot."""
    contexts = []

    def open_page(width: int = 1600, height: int = 1000) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@contextmanager
def showing(page: Page, name: str):
    """Screenshot of the page as the block leaves it, passed or failed."""
    try:
        yield page
    finally:
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_asset_graph_shows_the_lifecycle_from_raw_to_drift_report(servers, open_page):
    # Wide enough that the graph is drawn with full asset nodes, not name-truncated minimal boxes.
    page = open_page(3000, 1100)
    page.goto(f"{servers['dagster'].url}/assets/rental_drift_report?view=lineage&lineageScope=upstream&lineageDepth=5")
    with showing(page, "asset_graph_raw_to_drift_report"):
        nodes = [page.locator("svg foreignObject").get_by_text(name, exact=True).first for name in LIFECYCLE]
        for node in nodes:
            expect(node).to_be_visible()
        expect(page.locator("svg foreignObject").get_by_text(re.compile(r"^Loading"))).to_have_count(0)
    xs = [node.bounding_box()["x"] for node in nodes]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), f"not drawn in lineage order: {dict(zip(LIFECYCLE, xs))}"


def test_drift_report_plot_is_rendered(servers, open_page):
    page = open_page()
    page.goto(f"{servers['dagster'].url}/assets/rental_drift_report")
    page.locator("tr", has=page.get_by_text("report", exact=True)).get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    heatmap = dialog.get_by_role("img", name="drift heat map")  # the markdown's data-URI PNG, by its alt text
    with showing(page, "drift_report_heat_map"):
        expect(dialog.get_by_role("heading", name=LAST_DAY)).to_be_visible()  # the latest day: the demo's last
        heatmap.scroll_into_view_if_needed()
        expect(heatmap).to_be_visible()
    images = dialog.locator("img")  # every picture of the report decoded, none a broken-image icon
    assert images.count() >= 1
    assert all(width > 0 for width in images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"))


def test_daily_check_shows_its_partition_status(servers, open_page):
    page = open_page()
    page.goto(f"{servers['dagster'].url}/assets/validated_rentals?view=checks&checkDetail=row_contract")
    expect(page.get_by_text("Execution history", exact=True)).to_be_visible()
    page.get_by_text("Partitions", exact=True).last.click()  # the check's tab (the first is the asset's)
    page.get_by_placeholder("Filter by partition").fill(LAST_DAY)
    page.get_by_text(LAST_DAY, exact=True).first.click()
    with showing(page, "check_row_contract_partition_status"):
        # A check's result carries its day only from a single-partition run (tag dagster/partition);
        # from a partition-range run the UI shows every day of the range as "Skipped".
        expect(page.get_by_text("Passed", exact=True),
               f"{LAST_DAY}: row_contract shows no result of its own (was the day run as a one-day range?)"
               ).to_be_visible()
        expect(page.get_by_text(re.compile(r"\d+ expectations hold on 24 rows"))).to_be_visible()


def test_retrain_sensor_shows_its_last_tick(servers, open_page):
    page = open_page()
    page.goto(f"{servers['dagster'].url}/locations/{LOCATION}/sensors/rentals_retrain_sensor")
    latest = page.get_by_role("row").filter(has_text="Latest tick")
    with showing(page, "retrain_sensor_last_tick"):
        for attempt in range(12):  # the daemon ticks it within a minute or two of loading the code location
            try:
                expect(latest).to_contain_text(TICK_TIME, timeout=20_000)
                break
            except AssertionError:
                if attempt == 11:
                    raise
                page.reload()
        # The daemon continued from the demo's cursor, which had already launched this span's retrains.
        expect(latest).to_contain_text("0 runs requested")
        expect(page.get_by_text(f'"last_day": "{LAST_DAY}"').first).to_be_visible()


def test_mlflow_shows_the_champion_alias(servers, demo_env, open_page):
    champion = MlflowClient(demo_env["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(MODEL, CHAMPION)
    page = open_page()
    page.goto(f"{servers['mlflow'].url}/#/models/{MODEL}")
    alias = page.get_by_text(re.compile(rf"^@\s*{CHAMPION}$"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=f"Version {champion.version}", exact=True))
    with showing(page, "mlflow_rental_model_champion_alias"):
        expect(row).to_be_visible()
        row.scroll_into_view_if_needed()
        expect(row.get_by_text(re.compile(rf"^@\s*{CHAMPION}$"))).to_be_visible()
    expect(alias).to_have_count(1)  # one version holds it
