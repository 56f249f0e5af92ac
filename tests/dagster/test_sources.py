"""Each use case has its own source, configured by variables named after it (dg.EnvVar, read at run time)."""

import dagster as dg
import pytest

from orchestration.resources import build_resources, resolved
from resources.sources import LandingSource, ReplaySource, UseCaseSources
from tests.conftest import DATA
from tests.dagster.test_second_use_case import KIOSK_SALES


def test_by_default_the_bike_replays_its_history_and_a_new_use_case_its_own_file(spec):
    sources = resolved(build_resources([spec, KIOSK_SALES])["source"])
    assert sources.source(spec) == ReplaySource(csv_path="data/bike_sharing_hourly.csv")
    assert sources.source(KIOSK_SALES) == ReplaySource(csv_path="data/kiosk_sales.csv")


def test_variables_named_after_a_use_case_configure_only_that_use_case(spec, monkeypatch, tmp_path):
    monkeypatch.setenv("KIOSK_SALES_SOURCE", "landing")
    monkeypatch.setenv("KIOSK_SALES_LANDING_URL", str(tmp_path))
    monkeypatch.setenv("RENTALS_REPLAY_CSV", str(DATA))
    config = build_resources([spec, KIOSK_SALES])["source"]
    assert config.use_cases["kiosk_sales"].landing_url == dg.EnvVar("KIOSK_SALES_LANDING_URL")
    sources = resolved(config)
    assert sources.source(KIOSK_SALES) == LandingSource(url=str(tmp_path))
    assert sources.source(spec) == ReplaySource(csv_path=str(DATA))


def test_a_replay_file_of_another_use_case_is_refused_by_name(spec):
    sources = UseCaseSources(use_cases={"kiosk_sales": {"replay_csv": str(DATA), "landing_url": "unused"}})
    with pytest.raises(ValueError, match="no event-date column 'Time'.*another use case"):
        sources.fetch(KIOSK_SALES, "2024-03-01")


def test_a_use_case_without_a_source_is_named(spec):
    with pytest.raises(KeyError, match="no source configured for use case 'kiosk_sales'"):
        UseCaseSources(use_cases={}).fetch(KIOSK_SALES, "2024-03-01")


def test_landed_files_are_listed_and_versioned_in_their_use_case_folder(spec, tmp_path, june_first):
    (tmp_path / "bike").mkdir()
    (tmp_path / "bike" / "rentals_2011-06-01.csv").write_bytes(june_first)
    sources = UseCaseSources(use_cases={
        "rentals": {"kind": "landing", "replay_csv": "unused", "landing_url": str(tmp_path / "bike")},
        "kiosk_sales": {"kind": "landing", "replay_csv": "unused", "landing_url": str(tmp_path / "kiosk")}})
    assert sources.landed(spec) == ["rentals_2011-06-01.csv"] and sources.landed(KIOSK_SALES) == []
    assert sources.version("rentals_2011-06-01.csv") == LandingSource(url=str(tmp_path / "bike")).version(
        "rentals_2011-06-01.csv")
    assert sources.fetch(spec, "2011-06-01").content == june_first


def test_resources_set_by_a_variable_show_its_name_and_read_its_value_at_run_time(monkeypatch, tmp_path):
    """The UI shows a resource's configuration: a set variable appears as `dg.EnvVar(name)`, never as
    its value (an address, a host); runs and `resolved` read the value. Unset: the plain default."""
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path))
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.com")
    monkeypatch.setenv("MLFLOW_UI_URL", "https://mlflow.example.com")
    monkeypatch.delenv("ALERT_SMTP_HOST", raising=False)
    monkeypatch.delenv("LAKE_S3_BUCKET", raising=False)
    config = build_resources()
    assert (config["storage"].root, config["alert_sink"].email_to, config["mlflow"].ui_url) == (
        dg.EnvVar("LAKE_ROOT"), dg.EnvVar("ALERT_EMAIL_TO"), dg.EnvVar("MLFLOW_UI_URL"))
    assert config["alert_sink"].smtp_host == "localhost"
    assert resolved(config["storage"]).root == str(tmp_path)
    assert resolved(config["alert_sink"]).email_to == "oncall@example.com"
