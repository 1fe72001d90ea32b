"""drain_topics' wait for a running stream, on the triggerer: the trigger's arguments survive
serialisation, and it fires when no job runs on the checkpoint or the checkpoint passed the end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.airflow.tasks import DRAIN_HERE, DRAINED
from app.airflow.triggers import StreamPassesTopicsTrigger
from app.checkpoint import StreamLock
from tests.conftest import isolated_settings


async def _first(trigger: StreamPassesTopicsTrigger) -> dict[str, str]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def test_the_trigger_survives_serialisation(tmp_path: Path) -> None:
    trigger = StreamPassesTopicsTrigger({"clicks": {"0": 12, "1": 7}}, str(tmp_path), poll_seconds=2.0)
    path, arguments = trigger.serialize()
    assert path == "app.airflow.triggers.StreamPassesTopicsTrigger"
    assert StreamPassesTopicsTrigger(**arguments).serialize() == (path, arguments)


def test_it_waits_while_a_stream_holds_the_checkpoint_and_fires_when_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = isolated_settings(tmp_path / "state")
    monkeypatch.setenv("CHECK_POINT_LOCATION", str(settings.check_point_location))
    target = {"clicks": {"0": 5}}  # the checkpoint has read nothing of it yet
    trigger = StreamPassesTopicsTrigger(target, str(settings.check_point_location), poll_seconds=0.05)
    stream = StreamLock(settings, "processing-time")
    stream.acquire()

    async def stopped_after_a_while() -> dict[str, str]:
        waiting = asyncio.ensure_future(_first(trigger))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # the stream still runs and has not passed the end: keep waiting
        stream.release()
        return await asyncio.wait_for(waiting, 10)

    try:
        assert asyncio.run(stopped_after_a_while()) == {"state": DRAIN_HERE}  # stopped first: drain here
    finally:
        stream.release()
    nothing_to_pass = StreamPassesTopicsTrigger({}, str(settings.check_point_location), poll_seconds=0.05)
    assert asyncio.run(asyncio.wait_for(_first(nothing_to_pass), 10)) == {"state": DRAINED}
