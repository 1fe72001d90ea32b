"""The record schemas of clickstream, defined once: CSV columns, JSON message fields, Spark types.

The producer validates CSV rows against these, writes each row as a JSON object with exactly
these fields and types, and stamps `SCHEMA_VERSION` into a message header. The Spark jobs build
their read schemas from the same definitions (`spark_jobs.transforms`), so a column added here
reaches every reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

SCHEMA_VERSION = 1


class FieldType(Enum):
    LONG = "long"  # every column of the Globo.com files is an integer (ids, epoch milliseconds, codes)


@dataclass(frozen=True)
class Field:
    """A column of a CSV file and a field of its JSON message; `description` where the name does not
    say it all."""

    name: str
    type: FieldType = FieldType.LONG
    description: str = ""


@dataclass(frozen=True)
class RecordSchema:
    """One kind of record: its fields in CSV order and the field that keys its Kafka messages."""

    name: str
    fields: tuple[Field, ...]
    key: str

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)


CLICKS = RecordSchema(
    name="clicks",
    key="session_id",  # a session's clicks stay in order on one partition
    fields=(
        Field("user_id"),
        Field("session_id"),
        Field("session_start", description="epoch milliseconds"),
        Field("session_size", description="number of clicks the session declares"),
        Field("click_article_id"),
        Field("click_timestamp", description="epoch milliseconds"),
        # the click's context: codes of the data set, without a published meaning
        Field("click_environment"),
        Field("click_deviceGroup"),
        Field("click_os"),
        Field("click_country"),
        Field("click_region"),
        Field("click_referrer_type"),
    ),
)

ARTICLES = RecordSchema(
    name="articles",
    key="article_id",  # the metadata topic is compacted: the latest record per article wins
    fields=(
        Field("article_id"),
        Field("category_id"),
        Field("created_at_ts", description="epoch milliseconds"),
        Field("publisher_id"),
        Field("words_count"),
    ),
)

# Kafka message headers the producer sets on every data message
HEADER_SOURCE_FILE = "source_file"
HEADER_SOURCE_LINE = "source_line"
HEADER_SCHEMA_VERSION = "schema_version"
HEADER_FILE_VERSION = "file_version"
