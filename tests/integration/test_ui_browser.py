"""The Airflow UI in a real browser (Debian's headless Chromium, driven by Playwright): an anonymous
visit is sent to the login page, the configured user logs in, finds both DAGs, triggers
`clickstream_hourly` with the Trigger form and sees the run succeed; the pipeline view shows every
section with the figures of the runs before, and a message when Kafka is down. Screenshots of each
step go to `.test-output/ui/` (the test's output folder, kept out of git)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from app.airflow.client import AirflowClient
from app.hours import is_closed
from app.runtime.service import Service
from app.settings import REPO_ROOT, Settings
from tests.integration.jobs import SAMPLE, shifted_copy

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
    from pyspark.sql import SparkSession

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# the closed network refuses Chromium's own background connections: turn them off
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = REPO_ROOT / ".test-output" / "ui"
DAG = "clickstream_hourly"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test` installs it (scripts/bootstrap.sh --test-tools)")
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # Playwright gives the browser a new empty profile of its own, removed when it closes
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    return page


def log_in(page: Page, settings: Settings, password: str) -> None:
    page.goto(f"{settings.airflow_url}/")
    page.get_by_label("Username").fill(settings.airflow_admin_user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def manual_runs(airflow_client: AirflowClient) -> list[str]:
    runs = airflow_client.call("GET", f"/api/v2/dags/{DAG}/dagRuns?run_type=manual")["dag_runs"]
    return [str(run["dag_run_id"]) for run in runs]


def test_anonymous_visit_is_sent_to_the_login_page(
    browser: Browser, airflow_client: AirflowClient, settings: Settings
) -> None:
    page = new_page(browser)
    page.goto(f"{settings.airflow_url}/dags/{DAG}")
    page.wait_for_url("**/auth/login**")
    page.get_by_text("Sign into Airflow").wait_for()
    assert page.get_by_text(DAG).count() == 0
    page.screenshot(path=str(OUTPUT / "01-anonymous-login-page.png"))
    with page.expect_response(lambda r: "/auth/token" in r.url and r.request.method == "POST") as login:
        log_in(page, settings, "not-the-password")
    assert login.value.status == 401  # the API refused the password
    page.wait_for_load_state("networkidle")
    assert "/auth/login" in page.url  # and the page stays on the login form
    assert page.get_by_label("Password").is_visible()
    page.close()


def test_log_in_find_both_dags_trigger_and_see_the_run_succeed(
    browser: Browser, airflow_client: AirflowClient, settings: Settings, kafka: Service, metastore: Service
) -> None:
    airflow_client.wait_for_dag(DAG)
    airflow_client.unpause(DAG)
    before = manual_runs(airflow_client)
    page = new_page(browser)
    log_in(page, settings, settings.airflow_admin_password)
    page.wait_for_url(lambda url: "/auth/login" not in url)

    page.goto(f"{settings.airflow_url}/dags")
    for dag_id in (DAG, "clickstream_streaming"):
        page.get_by_role("link", name=dag_id).first.wait_for()
    page.screenshot(path=str(OUTPUT / "02-dag-list.png"))

    page.get_by_role("link", name=DAG).first.click()
    page.wait_for_url(f"**/dags/{DAG}**")
    page.get_by_text("wait_for_new_files").first.wait_for()  # the DAG's own page has rendered
    try:
        # a click that lands before the page is interactive opens nothing: click until the form opens
        form = page.get_by_text(f"Trigger Dag - {DAG}")
        for _ in range(5):
            page.get_by_role("button", name="Trigger").first.click()  # the header's, named "Trigger …"
            try:
                form.wait_for(timeout=10_000)
                break
            except PlaywrightTimeoutError:
                continue
        form.wait_for(timeout=1_000)
        page.screenshot(path=str(OUTPUT / "03-trigger-form.png"))
        # the form re-renders while the DAG page refreshes, so a pointer click can wait forever for a
        # "stable" button: send the click event to the button as it is at that moment
        page.locator('[data-testid="trigger-dag-submit"]').dispatch_event("click")
    except Exception:
        page.screenshot(path=str(OUTPUT / "03-trigger-form-failed.png"))
        raise

    deadline = time.monotonic() + 60
    while not (new := [run for run in manual_runs(airflow_client) if run not in before]):
        assert time.monotonic() < deadline, "the Trigger form created no run"
        time.sleep(1)
    run_id = new[0]
    outcome = airflow_client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states

    page.goto(f"{settings.airflow_url}/dags/{DAG}/runs/{run_id}")
    page.get_by_text(run_id).first.wait_for()
    page.get_by_text("success").first.wait_for()
    page.screenshot(path=str(OUTPUT / "04-run-succeeded.png"), full_page=True)
    page.close()


@pytest.fixture
def clicks_landed_by_an_hourly_run(
    kafka: Service, metastore: Service, airflow_client: AirflowClient, settings: Settings, data_dir: Path
) -> None:
    """An hourly run over a click file of its own (a sample file moved 150 days on: new to every
    other test), so that the view has figures whichever tests ran before on this worker."""
    data = data_dir
    shutil.copy(SAMPLE / "articles_metadata.csv", data)
    own_file = data / "clicks_hour_902.csv"
    shifted_copy(SAMPLE / "clicks_hour_002.csv", own_file, days=150)
    os.utime(own_file, (time.time() - 3600, time.time() - 3600))
    airflow_client.wait_for_dag(DAG)
    airflow_client.unpause(DAG)
    run_id = airflow_client.trigger(DAG, {"data_dir": str(data)})
    outcome = airflow_client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states


@pytest.mark.usefixtures("clicks_landed_by_an_hourly_run")
def test_pipeline_view_shows_every_section_with_real_figures(
    browser: Browser, airflow_client: AirflowClient, settings: Settings, kafka: Service, spark: SparkSession
) -> None:
    anonymous = AirflowClient(settings.airflow_url)
    assert anonymous.request("GET", "/clickstream/api/state", authenticated=False)[0] == 401

    asked_at = datetime.now(UTC)
    status, state = airflow_client.request("GET", "/clickstream/api/state")
    assert status == 200, state
    assert all(state[section]["error"] is None for section in ("kafka", "ledger", "tables", "charts")), state
    topics = {topic["name"]: topic for topic in state["kafka"]["data"]["topics"]}
    assert sum(topics[settings.kafka_topic]["end_offsets"].values()) > 0
    clicks_files = [row for row in state["ledger"]["data"] if row["kind"] == "clicks"]
    published = sum(row["rows"] for row in clicks_files)
    tables = {table["name"]: table for table in state["tables"]["data"]}
    spark.sql(f"REFRESH TABLE `{settings.hive_database}`.raw_clicks")
    raw = spark.table(f"`{settings.hive_database}`.raw_clicks")
    raw_clicks = raw.count()
    assert tables["raw_clicks"]["rows"] == raw_clicks
    # the ledger holds each file's latest version; a file published again (--new-version, by an
    # earlier test) keeps its earlier version's rows in raw_clicks too
    latest = {(row["file"], row["version"]) for row in clicks_files}
    of_latest = sum(1 for row in raw.select("source_file", "file_version").collect() if tuple(row) in latest)
    # and a click an erasure removed (an earlier test forgot a user) is counted in erased_clicks, once
    spark.sql(f"REFRESH TABLE `{settings.hive_database}`.erased_clicks")
    erased = spark.table(f"`{settings.hive_database}`.erased_clicks")
    coordinates = erased.select("source_file", "file_version", "kafka_partition", "kafka_offset").distinct()
    erased_of_latest = sum(1 for row in coordinates.collect() if (row[0], row[1]) in latest)
    assert of_latest + erased_of_latest == published
    assert "quarantine" in tables and tables["article_hourly"]["latest_partition"].startswith("dt=")
    charts = state["charts"]["data"]
    # the charts show the hours that are over (another test may have landed clicks of this hour)
    per_hour = raw.groupBy("dt", "hour").count().collect()
    closed = sum(row["count"] for row in per_hour if is_closed((row["dt"], row["hour"]), asked_at))
    assert sum(clicks for _, clicks in charts["clicks_per_hour"]) == closed
    # the runs before checked their hours: each has its reconciled state
    reconciled = {hour: hour_state for hour, hour_state, _ in charts["reconciliation"]}
    assert "balanced" in set(reconciled.values()), reconciled
    assert charts["top_categories"] and charts["top_articles"] and charts["by_device_group"]

    # each view answers within 2 s (after the first, which imports pyarrow and plotly's file)
    for path in ("/clickstream/", "/clickstream/api/state", f"/clickstream/?hour={charts['hour']}"):
        started = time.monotonic()
        assert airflow_client.request("GET", path)[0] == 200
        assert time.monotonic() - started < 2.0, f"{path} took {time.monotonic() - started:.2f} s"

    page = new_page(browser)
    page.goto(f"{settings.airflow_url}/clickstream/")
    page.wait_for_url("**/auth/login**")  # the view is behind the login too
    log_in(page, settings, settings.airflow_admin_password)
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.goto(f"{settings.airflow_url}/clickstream/")
    for heading in ("Kafka", "Producer ledger: files published", "Hive tables", "Charts"):
        page.get_by_role("heading", name=heading).wait_for()
    page.get_by_text(settings.kafka_topic, exact=True).first.wait_for()
    page.get_by_role("cell", name="raw_clicks", exact=True).wait_for()
    page.get_by_role("cell", name=f"{raw_clicks:,}", exact=True).first.wait_for()
    page.locator("#clicks-per-hour .main-svg").first.wait_for()  # plotly drew the chart, offline
    page.locator("#reconciliation .main-svg").first.wait_for()  # the strip of reconciled hours
    assert page.locator(".down").count() == 0
    page.screenshot(path=str(OUTPUT / "05-pipeline-view.png"), full_page=True)

    # the view is in the UI's navigation, shown inside the UI
    page.goto(f"{settings.airflow_url}/plugin/clickstream")
    page.frame_locator("iframe").first.get_by_role("heading", name="Hive tables").wait_for()
    page.screenshot(path=str(OUTPUT / "06-pipeline-view-in-airflow.png"))

    # the landed hours are partitions of an asset, listed in the UI's asset view
    (asset,) = airflow_client.call("GET", "/api/v2/assets?name_pattern=clickstream_landed_hours")["assets"]
    events = airflow_client.call("GET", f"/api/v2/assets/events?asset_id={asset['id']}&order_by=-timestamp")
    latest = events["asset_events"][0]["partition_key"]
    assert latest in reconciled, (latest, reconciled)
    page.goto(f"{settings.airflow_url}/assets/{asset['id']}")
    page.get_by_text(f"Partition Key: {latest}").first.wait_for()
    page.screenshot(path=str(OUTPUT / "08-landed-hours-asset-partitions.png"), full_page=True)

    # with Kafka stopped, the view says so and still shows the tables
    kafka.stop()
    try:
        started = time.monotonic()
        page.goto(f"{settings.airflow_url}/clickstream/")
        page.get_by_text("Kafka is not reachable").first.wait_for()
        assert time.monotonic() - started < 10
        page.get_by_role("cell", name="raw_clicks", exact=True).wait_for()
        page.screenshot(path=str(OUTPUT / "07-pipeline-view-kafka-down.png"), full_page=True)
    finally:
        kafka.start()
    page.close()
