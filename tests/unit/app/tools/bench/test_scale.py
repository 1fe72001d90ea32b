"""The scale series' report: one column per size, the growth, and the verdicts on the goals."""

from __future__ import annotations

from app.tools.bench.scale import SizeRun, scale_section


def run(size: int, update: float, old_hour: float, view: float, erasure: float = 6.0) -> SizeRun:
    return SizeRun(
        size=size,
        clicks=677_862 * size,
        publish_seconds=7.0 * size,
        publish_idle_seconds=1.0,
        floor_seconds=5.0 * size,
        floor_wall_seconds=5.5 * size if size == 1 else 6.0 * size,
        floor_processes=2,
        drain_rows=1_041_909 * size,
        drain_seconds=50.0 * size,
        drain_wall_seconds=70.0 * size,
        fair_seconds=45.0 * size,
        fair_wall_seconds=60.0 * size,
        update_batch_seconds=update,
        update_recompute_seconds=1.0,
        update_wall_seconds=20.0 + update,
        update_hours=13 * size,
        old_hour_wall_seconds=old_hour,
        old_hour_read_partitions=200,
        full_check_seconds=2.0 * size,
        view_seconds=view,
        check_seconds=0.5,
        erasure_rows=40,
        erasure_hours=12,
        erasure_lookup_seconds=0.8,
        erasure_seconds=erasure,
        erasure_wall_seconds=20.0 + erasure,
        drain_tables={"raw_clicks": 10.0 * size, "article_hourly": 20.0 * size},
        fair_tables={"raw_clicks": 8.0 * size, "article_hourly": 12.0 * size},
    )


def test_a_flat_series_meets_the_goals_and_a_growing_one_names_what_grew() -> None:
    flat = "\n".join(scale_section([run(1, 3.0, 30.0, 0.4), run(3, 3.2, 31.0, 0.5), run(10, 3.3, 33.0, 0.6)]))
    assert "| figure | 1x | 3x | 10x | 10x / 1x |" in flat
    assert "| records published (clicks and articles) | 677,862 | 2,033,586 | 6,778,620 |  |" in flat
    assert "| small update: micro-batch (s) | 3.0 | 3.2 | 3.3 | 1.10 |" in flat
    assert "within 1.3x of its 1x value: met." in flat
    assert "The view under 2 s: met." in flat
    assert "| the drain as a fraction of the fair ceiling | 0.90 | 0.90 | 0.90 |  |" in flat
    assert "The drain at 0.8 or more of the fair ceiling: met at every size." in flat
    assert "| the producer as a fraction of its fair ceiling | 0.79 | 0.86 | 0.86 |  |" in flat
    assert (
        "The producer at 0.8 or more of its fair ceiling (the bare client in 2 process(es), whole commands): "
        "missed at 1x (0.79)." in flat
    )
    assert "| one erasure: the user's clicks / hours | 40 / 12 | 40 / 12 | 40 / 12 |  |" in flat

    growing = "\n".join(scale_section([run(1, 3.0, 30.0, 0.4), run(10, 3.0, 90.0, 2.5, erasure=60.0)]))
    assert (
        "missed by one old hour recomputed: whole job (3.00x), one erasure: the whole request (10.00x), "
        "one erasure: whole job (3.08x)." in growing
    )
    assert "The view under 2 s: missed" in growing


def test_a_grown_update_says_whether_its_hours_or_their_cost_grew() -> None:
    more_hours = "\n".join(scale_section([run(1, 3.0, 30.0, 0.4), run(10, 30.0, 30.0, 0.4)]))
    assert "small update: whole job (2.17x)." in more_hours
    assert "13 at 1x, 130 at 10x" in more_hours
    assert "the work grew, not its cost per hour" in more_hours

    flat = "\n".join(scale_section([run(1, 3.0, 30.0, 0.4), run(10, 3.0, 30.0, 0.4)]))
    assert "rewrites every hour" not in flat


def test_the_drain_profile_sets_each_table_beside_the_fair_ceilings_and_the_rest() -> None:
    text = "\n".join(scale_section([run(1, 3.0, 30.0, 0.4), run(10, 3.0, 30.0, 0.4)]))
    assert "| part | 1x | 10x |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| article_hourly", "| raw_clicks", "| the rest"))]
    assert rows == [
        "| article_hourly | 20.0 / 12.0 | 200.0 / 120.0 |",
        "| raw_clicks | 10.0 / 8.0 | 100.0 / 80.0 |",
        "| the rest | 20.0 / 25.0 | 200.0 / 250.0 |",
    ]


def test_make_bench_names_the_sizes_it_measured() -> None:
    from app.tools.bench.scale import scale_intro

    title, _, method, *_ = scale_intro([10, 1, 3])
    assert title == "## 9. How each cost grows: 1x, 3x and 10x the data set"
    assert "replicated 1, 3 and 10 times" in method and "at 10x within 1.3x of its 1x value" in method
    assert scale_intro([1, 3])[0] == "## 9. How each cost grows: 1x and 3x the data set"
