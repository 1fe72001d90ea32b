"""The pipeline view's web app: a FastAPI app that the Airflow plugin mounts at `/clickstream`.

`GET /clickstream/` is one HTML page (Kafka, the ledger, the Hive tables, charts; `?hour=` picks
the hour of the detail charts); `GET /clickstream/api/state` is the same as JSON. Both are behind
Airflow's login: the Airflow UI's session cookie or an API token. A page visit without a login is
sent to Airflow's login page. The charts are drawn by plotly.js, served from the plotly package
(no internet needed).
"""

from __future__ import annotations

import dataclasses
import html
import json
import sys
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.pipeline_view import (
    DEVICE_GROUPS,
    ENVIRONMENTS,
    Charts,
    KafkaState,
    PipelineState,
    Section,
    TableState,
    read_state,
)
from app.settings import load_settings

PREFIX = "/clickstream"


async def require_login(request: Request) -> None:
    """Airflow's own check: a valid token in the Authorization header or the UI's cookie."""
    from airflow.api_fastapi.core_api.security import get_user

    bearer = request.headers.get("authorization", "")
    credentials = None
    if bearer.lower().startswith("bearer "):
        from fastapi.security import HTTPAuthorizationCredentials

        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=bearer[7:])
    await get_user(request, None, credentials)


def warm_up() -> None:
    """Import what a view needs (pyarrow, the Kafka and thrift clients: seconds on a small machine)
    in the background, so that the first view after a restart is as quick as the next ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from confluent_kafka.admin import AdminClient  # noqa: F401
    from thrift_files.libraries.thrift_hive_metastore_client import ThriftHiveMetastore  # noqa: F401

    buffer = pa.BufferOutputStream()  # one Parquet round trip starts pyarrow's readers and threads
    pq.write_table(pa.table({"clicks": [1]}), buffer)
    pq.read_table(pa.BufferReader(buffer.getvalue()))
    _plotly_js()


def create_app() -> FastAPI:
    app = FastAPI(title="clickstream pipeline view", docs_url=None, redoc_url=None, openapi_url=None)
    if "airflow.api_fastapi.app" in sys.modules:  # in the api-server, the only process that serves it
        threading.Thread(target=warm_up, name="clickstream-view-warm-up", daemon=True).start()

    @app.exception_handler(HTTPException)
    async def login_first(request: Request, error: HTTPException) -> Response:
        if error.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/auth/login?next={quote(PREFIX + '/')}", status_code=303)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(require_login)])
    def page(hour: str | None = None) -> HTMLResponse:
        started = time.monotonic()
        state = read_state(load_settings(), hour)
        return HTMLResponse(render_page(state, time.monotonic() - started))

    @app.get("/api/state", dependencies=[Depends(require_login)])
    def state(hour: str | None = None) -> dict[str, Any]:
        return dataclasses.asdict(read_state(load_settings(), hour))

    @app.get("/static/plotly.min.js")
    def plotly_js() -> Response:
        return Response(_plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    return app


@cache
def _plotly_js() -> bytes:
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


# --- the page --------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2rem 1.6rem; color: #1a202c; }
h1 { font-size: 1.4rem; margin: 0 0 .2rem; } h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
.meta { color: #4a5568; font-size: .85rem; }
table { border-collapse: collapse; font-size: .85rem; } th, td { padding: .25rem .7rem; text-align: left; }
th { background: #edf2f7; } tr:nth-child(even) td { background: #f7fafc; } td.n { text-align: right; }
.down { background: #fff5f5; border: 1px solid #fc8181; color: #9b2c2c; padding: .6rem .9rem; border-radius: 4px; }
.ok { color: #276749; } .warn { color: #975a16; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: .8rem; }
.chart { height: 300px; border: 1px solid #e2e8f0; border-radius: 4px; }
.chart.strip { height: 140px; grid-column: 1 / -1; }
"""


def render_page(state: PipelineState, seconds: float) -> str:
    body = [
        "<h1>clickstream pipeline</h1>",
        f'<div class="meta">read at {time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())} in {seconds:.2f} s '
        "from Kafka, the producer's ledger, the Hive Metastore and the tables' Parquet files</div>",
        _section("Kafka", "kafka", state.kafka, _kafka),
        _section("Producer ledger: files published", "ledger", state.ledger, _ledger),
        _section("Hive tables", "tables", state.tables, _tables),
        _section("Charts", "charts", state.charts, _charts),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>clickstream pipeline</title>'
        f'<style>{STYLE}</style><script src="{PREFIX}/static/plotly.min.js"></script></head>'
        f"<body>{''.join(body)}</body></html>"
    )


def _section(title: str, anchor: str, section: Section, render: Any) -> str:
    inner = f'<div class="down">{html.escape(section.error)}</div>' if section.error else render(section.data)
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{inner}</section>'


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{value:,}</td>' if isinstance(value, int) else f"<td>{html.escape(str(value))}</td>"
            for value in row
        )
        lines.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _kafka(kafka: KafkaState) -> str:
    rows: list[list[Any]] = [
        [
            topic.name,
            topic.partitions,
            ", ".join(f"{p}: {o:,}" for p, o in sorted(topic.end_offsets.items())),
            topic.records,
            _size(topic.bytes_on_disk),
        ]
        for topic in kafka.topics
    ]
    table = _table(["topic", "partitions", "end offset per partition", "offsets (records + markers)", "size"], rows)
    if kafka.stream_running:
        holder = kafka.stream_running
        running = (
            f'<span class="ok">a streaming job runs on the checkpoint</span> (pid {holder.get("pid")}, '
            f"{html.escape(str(holder.get('trigger')))}, since {html.escape(str(holder.get('started')))})"
        )
    else:
        running = "no streaming job runs now (the hourly DAG drains the topics each hour)"
    behind = ", ".join(f"{topic}: {count:,}" for topic, count in kafka.stream_behind.items())
    caught_up = not any(kafka.stream_behind.values())
    lag = (
        f'<span class="{"ok" if caught_up else "warn"}">Spark checkpoint behind the topics\' end: {behind or "-"}'
        f"</span>"
        if kafka.checkpoint_batches
        else '<span class="warn">the Spark checkpoint has no completed batch yet</span>'
    )
    return f"{table}<p>{lag}<br>{running}</p>"


def _ledger(rows: list[dict[str, Any]]) -> str:
    refused = [r for r in rows if r["status"] == "refused"]
    files = [r for r in rows if r["status"] != "refused"]
    refusals = (
        f"<p><b>{len(refused)} file(s) refused</b>: nothing of them is published until they are dealt with</p>"
        + _table(
            ["refused file", "reason", "what to do", "refused at"],
            [[r["file"], r["reason"], r["fix"], r["refused_at"]] for r in refused],
        )
        if refused
        else ""
    )
    if not files:
        return refusals + "<p>nothing published yet</p>"
    shown = files[:50]
    table = _table(
        ["file", "kind", "version", "status", "rows", "rejected", "published at"],
        [[r["file"], r["kind"], r["version"], r["status"], r["rows"], r["rejected"], r["published_at"]] for r in shown],
    )
    more = f"<p>and {len(files) - len(shown)} more files</p>" if len(files) > len(shown) else ""
    total = sum(int(r["rows"]) for r in files)
    rejected = sum(int(r["rejected"]) for r in files)
    return f"{refusals}<p>{len(files)} files, {total:,} rows, {rejected:,} rejected</p>{table}{more}"


def _tables(tables: list[TableState]) -> str:
    if not tables:
        return "<p>no tables yet: they appear with the first Spark job</p>"
    return _table(
        ["table", "rows", "partitions", "latest partition"],
        [
            [t.name, t.rows, t.partitions if t.partitioned else "-", t.latest_partition or _no_partition(t)]
            for t in tables
        ],
    )


def _no_partition(table: TableState) -> str:
    return "none yet" if table.partitioned else "(not partitioned)"


def _charts(charts: Charts) -> str:
    if not charts.clicks_per_hour:
        return "<p>no aggregates yet</p>"
    options = "".join(
        f'<option value="{h}"{" selected" if h == charts.hour else ""}>{h}:00 UTC ({c:,} clicks)</option>'
        for h, c in charts.clicks_per_hour
    )
    figures = {
        "clicks-per-hour": _bars(
            "Clicks per hour (UTC)", [_moment(h) for h, _ in charts.clicks_per_hour],
            [c for _, c in charts.clicks_per_hour], axis="date",
            axis_range=data_range([h for h, _ in charts.clicks_per_hour]),
        ),
        "top-categories": _bars(
            f"Top categories, {charts.hour}:00", [f"cat {c}" for c, _, _ in charts.top_categories],
            [n for _, n, _ in charts.top_categories],
        ),
        "top-articles": _bars(
            f"Top articles, {charts.hour}:00", [f"art {a}" for a, _, _ in charts.top_articles],
            [n for _, _, n in charts.top_articles],
        ),
        "device-groups": _bars(
            f"Clicks by device group, {charts.hour}:00",
            [_named(DEVICE_GROUPS, d) for d, _ in charts.by_device_group], [n for _, n in charts.by_device_group],
        ),
        "environments": _bars(
            f"Clicks by environment, {charts.hour}:00",
            [_named(ENVIRONMENTS, e) for e, _ in charts.by_environment], [n for _, n in charts.by_environment],
        ),
        "referrer-types": _bars(
            f"Clicks by referrer type, {charts.hour}:00", [f"referrer {r}" for r, _ in charts.by_referrer_type],
            [n for _, n in charts.by_referrer_type],
        ),
    }  # fmt: skip
    if charts.reconciliation:
        figures = {"reconciliation": _strip(charts.reconciliation), **figures}
    divs = "".join(
        f'<div class="chart{" strip" if name == "reconciliation" else ""}" id="{name}"></div>' for name in figures
    )
    script = "".join(
        f"Plotly.newPlot({json.dumps(name)}, {json.dumps(figure['data'])}, {json.dumps(figure['layout'])}, "
        "{displaylogo: false, responsive: true});"
        for name, figure in figures.items()
    )
    form = (
        f'<form method="get" action="{PREFIX}/"><label>hour of the detail charts <select name="hour" '
        f'onchange="this.form.submit()">{options}</select></label></form>'
    )
    return f'{form}<div class="charts">{divs}</div><script>{script}</script>'


def _bars(
    title: str, labels: list[str], values: list[int], axis: str = "category", axis_range: list[str] | None = None
) -> dict[str, Any]:
    return {
        "data": [{"type": "bar", "x": labels, "y": values, "marker": {"color": "#017cee"}}],
        "layout": {
            "title": {"text": title, "font": {"size": 14}},
            "margin": {"l": 50, "r": 10, "t": 40, "b": 70},
            "xaxis": {"type": axis, **({"range": axis_range} if axis_range else {})},
        },
    }


STATE_COLOURS = {"balanced": "#38a169", "empty": "#a0aec0", "landing": "#d69e2e", "disagrees": "#e53e3e"}


def _strip(rows: list[tuple[str, str, int]]) -> dict[str, Any]:
    """`hour_reconciliation` as a strip of hours on a time axis, one colour per state."""
    kinds: dict[str, list[tuple[str, str, int]]] = {}
    for row in rows:
        state = row[1]
        kind = state if state in ("balanced", "empty") else "landing" if state.startswith("landing") else "disagrees"
        kinds.setdefault(kind, []).append(row)
    data = [
        {
            "type": "bar",
            "name": kind,
            "x": [_moment(hour) for hour, _, _ in members],
            "y": [1] * len(members),
            "text": [f"{hour}: {state} ({clicks:,} clicks)" for hour, state, clicks in members],
            "hoverinfo": "text",
            "textposition": "none",
            "marker": {"color": STATE_COLOURS[kind]},
            "width": 3_600_000,
            "offset": 0,
        }
        for kind, members in kinds.items()
    ]
    return {
        "data": data,
        "layout": {
            "title": {"text": "Hours reconciled, file to aggregate (hour_reconciliation)", "font": {"size": 14}},
            "margin": {"l": 20, "r": 10, "t": 40, "b": 40},
            "xaxis": {"type": "date", "range": data_range([hour for hour, _, _ in rows])},
            "yaxis": {"visible": False},
            "barmode": "overlay",
            "bargap": 0,
        },
    }


def data_range(hours: list[str]) -> list[str]:
    """A time axis from the start of the first hour to the end of the last: it begins and ends at the data."""
    from app.hours import hour_end, parse_hour_key

    if not hours:
        return []
    return [_moment(min(hours)), f"{hour_end(parse_hour_key(max(hours))):%Y-%m-%dT%H:%M:%S}"]


def _moment(hour: str) -> str:
    """`2017-10-01T03` as a time plotly reads (UTC)."""
    return f"{hour}:00:00"


def _named(codes: dict[int, str], code: int) -> str:
    return f"{codes[code]} ({code})" if code in codes else f"code {code}"


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)
