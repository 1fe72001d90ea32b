"""Triggers of clickstream's deferrable tasks: what they wait for runs on Airflow's triggerer, so a
waiting task holds no worker slot and no pool slot.

`StreamPassesTopicsTrigger`: `drain_topics` found a long-running streaming job on the checkpoint;
it fires once that job has passed the topics' end as the task saw it (or once no job runs on the
checkpoint any more, so that the task drains by itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from app.storage import Location


class StreamPassesTopicsTrigger(BaseTrigger):
    """Polls the checkpoint (files only: no Kafka, no Spark) every `poll_seconds` until it is past
    `target` or no job runs on it; the event's `state` is one of `app.airflow.tasks`'s drain states."""

    def __init__(self, target: dict[str, dict[str, int]], check_point_location: str, poll_seconds: float = 5.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.target = target  # topic -> partition (as text: the trigger's arguments are JSON) -> end offset
        self.check_point_location = check_point_location
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "target": self.target,
                "check_point_location": self.check_point_location,
                "poll_seconds": self.poll_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from app.airflow.tasks import STREAM_DRAINS, drain_state
        from app.settings import load_settings

        settings = replace(load_settings(), check_point_location=Location.parse(self.check_point_location))
        target = {topic: {int(p): int(end) for p, end in ends.items()} for topic, ends in self.target.items()}
        while True:
            state = await asyncio.to_thread(drain_state, settings, target)
            if state != STREAM_DRAINS:
                yield TriggerEvent({"state": state})  # type: ignore[no-untyped-call]
                return
            await asyncio.sleep(self.poll_seconds)
