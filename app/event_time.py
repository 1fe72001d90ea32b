"""Event-time sanity: which clicks are implausible, and the reason each one is set aside for.

A click is set aside (the producer's rejects topic; the Spark jobs' `quarantine` table for records
from other producers) when its `click_timestamp` is before `CLICKSTREAM_EARLIEST_EVENT_TIME`, later
than the moment it is published plus `CLICKSTREAM_MAX_FUTURE_SECONDS`, or earlier than its own
`session_start` by more than `CLICKSTREAM_SESSION_START_TOLERANCE_SECONDS`, or later than it by more
than `CLICKSTREAM_MAX_SESSION_SECONDS` (which bounds the raw hours that recomputing a session's hour
reads: `app/hours.py::session_window`). "Published" is the
publishing clock (the Kafka record's time), so a `--replay` of history passes. The producer and the
Spark jobs take the bounds and the words of each reason from here, so both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    import numpy as np

EVENT_TIME = "click_timestamp"
SESSION_START = "session_start"
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1  # every column is a 64-bit integer (Spark's LongType)


@dataclass(frozen=True)
class EventTimeRules:
    earliest_ms: int
    max_future_ms: int
    session_start_tolerance_ms: int
    max_session_ms: int = 2**62  # no bound unless the settings give one

    @classmethod
    def from_settings(cls, settings: Settings) -> EventTimeRules:
        return cls(
            earliest_ms=int(settings.earliest_event_time.timestamp() * 1000),
            max_future_ms=int(settings.max_future_seconds * 1000),
            session_start_tolerance_ms=int(settings.session_start_tolerance_seconds * 1000),
            max_session_ms=int(settings.max_session_seconds * 1000),
        )

    @property
    def earliest_text(self) -> str:
        return datetime.fromtimestamp(self.earliest_ms / 1000, UTC).isoformat()

    # the reasons, each a fixed prefix (also used by the Spark jobs) and the click's values

    @property
    def too_early(self) -> str:
        return f"{EVENT_TIME} before CLICKSTREAM_EARLIEST_EVENT_TIME ({self.earliest_text}): "

    @property
    def too_late(self) -> str:
        seconds = self.max_future_ms // 1000
        return f"{EVENT_TIME} more than CLICKSTREAM_MAX_FUTURE_SECONDS ({seconds}) after it was published: "

    @property
    def before_session(self) -> str:
        return (
            f"{EVENT_TIME} earlier than its {SESSION_START} by more than "
            f"CLICKSTREAM_SESSION_START_TOLERANCE_SECONDS ({self.session_start_tolerance_ms // 1000}): "
        )

    @property
    def after_session(self) -> str:
        return (
            f"{EVENT_TIME} later than its {SESSION_START} by more than "
            f"CLICKSTREAM_MAX_SESSION_SECONDS ({self.max_session_ms // 1000}): "
        )

    def problem(self, click_ms: int, session_start_ms: int, published_ms: int) -> str | None:
        """Why a click is implausible, or None."""
        if click_ms < self.earliest_ms:
            return f"{self.too_early}{click_ms}"
        if click_ms > published_ms + self.max_future_ms:
            return f"{self.too_late}{click_ms}"
        if click_ms < session_start_ms - self.session_start_tolerance_ms:
            return f"{self.before_session}{click_ms} < {session_start_ms}"
        if click_ms > session_start_ms + self.max_session_ms:
            return f"{self.after_session}{click_ms} > {session_start_ms}"
        return None

    def maybe_implausible(self, clicks_ms: np.ndarray, session_starts_ms: np.ndarray, published_ms: int) -> np.ndarray:
        """For columns of clicks: True where `problem()` may find one (an overflow in the last test
        can only add a row, never miss one); those rows go through `problem()` for the reason."""
        return (
            (clicks_ms < self.earliest_ms)
            | (clicks_ms > published_ms + self.max_future_ms)
            | (clicks_ms < session_starts_ms - self.session_start_tolerance_ms)
            | (clicks_ms - self.max_session_ms > session_starts_ms)
        )
