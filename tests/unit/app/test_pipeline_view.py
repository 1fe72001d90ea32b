"""The pipeline view's page, rendered from hand-made states: every section, and a service that is down."""

from __future__ import annotations

from app.pipeline_view import Charts, KafkaState, PipelineState, Section, TableState, TopicState, read_state
from app.pipeline_view_app import render_page
from tests.conftest import isolated_settings


def state(kafka_error: str | None = None) -> PipelineState:
    kafka = KafkaState(
        topics=[TopicState("click_stream", 2, {0: 0, 1: 0}, {0: 1500, 1: 1700}, 2_500_000)],
        stream_behind={"click_stream": 0},
        stream_running=None,
        checkpoint_batches=True,
    )
    charts = Charts(
        clicks_per_hour=[("2017-10-01T03", 2224), ("2017-10-01T04", 1258)],
        hour="2017-10-01T03",
        top_categories=[(281, 400, 350)],
        top_articles=[(160974, 281, 120)],
        by_device_group=[(1, 1500), (3, 724)],
        by_referrer_type=[(2, 2000)],
        by_environment=[(4, 2000), (2, 224)],
        reconciliation=[
            ("2017-10-01T03", "balanced", 2224),
            ("2017-10-01T04", "landing: clicks_hour_001.csv not drained yet", 1258),
            ("2017-10-01T05", "raw_clicks holds 3 row(s), article_hourly adds up to 2 click(s)", 3),
            ("2017-10-01T06", "empty", 0),
        ],
    )
    ledger = [
        {"file": "clicks_hour_000.csv", "kind": "clicks", "version": 1, "status": "published", "rows": 1883,
         "rejected": 2, "published_at": "2026-11-28T00:03:05+00:00"},
    ]  # fmt: skip
    return PipelineState(
        kafka=Section(error=kafka_error) if kafka_error else Section(kafka),
        ledger=Section(error=kafka_error) if kafka_error else Section(ledger),
        tables=Section([TableState("raw_clicks", 4208, True, 23, "dt=2017-10-03/hour=2", "/lake/raw_clicks")]),
        charts=Section(charts),
    )


def test_every_section_shows_its_figures() -> None:
    page = render_page(state(), 0.4)
    for text in ("click_stream", "3,200", "2.4 MB", "clicks_hour_000.csv", "1,883", "raw_clicks", "4,208"):
        assert text in page, text
    for chart in ("clicks-per-hour", "top-categories", "top-articles", "device-groups", "referrer-types"):
        assert f'id="{chart}"' in page
    assert 'src="/clickstream/static/plotly.min.js"' in page and "cdn" not in page.lower()
    assert 'class="down"' not in page


def test_the_charts_name_the_documented_codes_and_draw_hours_on_a_time_axis() -> None:
    page = render_page(state(), 0.4)
    for name in ("Tablet (1)", "Empty (3)", "Web (4)", "Mobile App (2)"):
        assert name in page, name
    assert '"x": ["2017-10-01T03:00:00", "2017-10-01T04:00:00"]' in page and '"type": "date"' in page


def test_the_reconciliation_strip_colours_each_hour_by_its_state() -> None:
    page = render_page(state(), 0.4)
    assert 'id="reconciliation"' in page
    for kind in ("balanced", "empty", "landing", "disagrees"):
        assert f'"name": "{kind}"' in page, kind
    assert "2017-10-01T05: raw_clicks holds 3 row(s), article_hourly adds up to 2 click(s) (3 clicks)" in page


def test_the_time_axes_start_and_end_at_the_data() -> None:
    page = render_page(state(), 0.4)
    assert '"range": ["2017-10-01T03:00:00", "2017-10-01T07:00:00"]' in page  # the strip: 03:00 to 06:00's end
    assert '"range": ["2017-10-01T03:00:00", "2017-10-01T05:00:00"]' in page  # clicks per hour


def test_the_charts_leave_out_hours_that_are_not_over(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from app.pipeline_view import read_charts
    from app.reconciliation import ReconciliationTable
    from tests.unit.app.test_reconciliation import FolderMetastore

    folders = FolderMetastore(tmp_path / "table")
    at = datetime(2026, 12, 4, 11, tzinfo=UTC)
    ReconciliationTable(isolated_settings(tmp_path), folders).write(  # type: ignore[arg-type]
        {
            ("2026-12-04", hour): {"hour": hour, "state": "balanced", "raw_clicks": 1, "checked_at": at}
            for hour in (9, 10, 11)
        }
    )

    class Catalog:
        def locations(self) -> dict[str, dict[str, str]]:
            return {"hour_reconciliation": folders.partitions}

    charts = read_charts(Catalog(), None, now=datetime(2026, 12, 4, 11, 30, tzinfo=UTC))  # type: ignore[arg-type]
    assert [hour for hour, _, _ in charts.reconciliation] == ["2026-12-04T09", "2026-12-04T10"]


def test_a_service_that_is_down_is_a_message_and_the_rest_still_shows() -> None:
    page = render_page(state(kafka_error="Kafka is not reachable at KAFKA_SERVERS=127.0.0.1:9 (<timeout>)"), 2.1)
    assert page.count('class="down"') == 2  # Kafka and the ledger, which is read from Kafka
    assert "Kafka is not reachable at KAFKA_SERVERS=127.0.0.1:9 (&lt;timeout&gt;)" in page  # escaped
    assert "raw_clicks" in page and 'id="clicks-per-hour"' in page


def test_with_no_service_running_every_section_says_why(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = isolated_settings(tmp_path)  # free ports: nothing listens there
    found = read_state(settings)
    assert found.kafka.error and "Kafka is not reachable" in found.kafka.error and "make up" in found.kafka.error
    assert found.tables.error and "Hive Metastore is not reachable" in found.tables.error
    assert found.kafka.seconds < 5 and found.tables.seconds < 5


def test_the_ledger_section_lists_refused_files_first_with_what_to_do() -> None:
    from app.pipeline_view_app import _ledger

    rows: list[dict[str, object]] = [
        {"file": "clicks_hour_9.csv", "status": "refused", "reason": "it links to <x>", "fix": "remove the link",
         "refused_at": "2026-11-30T20:00:00+00:00"},
        {"file": "clicks_hour_1.csv", "kind": "clicks", "version": 1, "status": "published", "rows": 10,
         "rejected": 1, "published_at": "2026-11-30T19:00:00+00:00"},
    ]  # fmt: skip
    html = _ledger(rows)
    assert html.index("1 file(s) refused") < html.index("1 files, 10 rows, 1 rejected")
    assert "it links to &lt;x&gt;" in html and "remove the link" in html
