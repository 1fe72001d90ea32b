"""What a publishing run did, file by file: the object the CLI prints and the Airflow tasks return."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PUBLISHED = "published"
ALREADY_PUBLISHED = "already_published"
WOULD_PUBLISH = "would_publish"
SKIPPED_UNSTABLE = "skipped_still_being_written"
REFUSED = "refused"


@dataclass
class FileReport:
    file: str
    kind: str
    topic: str
    status: str
    version: int = 0
    rows: int = 0
    rejected: int = 0
    seconds: float = 0.0
    message: str = ""
    fix: str = ""  # for a refused file: what to do about it
    refused_before: bool = False  # refused for the same reason when it was as it is now (the ledger)
    offsets: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class PublishReport:
    files: list[FileReport] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def with_status(self, status: str) -> list[FileReport]:
        return [report for report in self.files if report.status == status]

    @property
    def rows(self) -> int:
        return sum(report.rows for report in self.with_status(PUBLISHED))

    @property
    def rejected(self) -> int:
        return sum(report.rejected for report in self.with_status(PUBLISHED))

    @property
    def refused(self) -> list[FileReport]:
        return self.with_status(REFUSED)

    def refusals(self) -> list[dict[str, str]]:
        """Each refused file once: its name, why, and what to do."""
        return [{"file": r.file, "reason": r.message, "fix": r.fix} for r in self.refused]

    def rows_by_topic(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for report in self.with_status(PUBLISHED):
            totals[report.topic] = totals.get(report.topic, 0) + report.rows
        return totals

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for Airflow's XCom and JSON output)."""
        return {
            "files": [asdict(report) for report in self.files],
            "ignored": list(self.ignored),
            "rows": self.rows,
            "rejected": self.rejected,
            "published_files": len(self.with_status(PUBLISHED)),
            "refused_files": len(self.refused),
            "refused": self.refusals(),
        }
