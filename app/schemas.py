"""The record schemas of clickstream, defined once: CSV columns, JSON message fields, Spark types.

The producer validates CSV rows against these, writes each row as a JSON object with exactly
these fields and types, and stamps `SCHEMA_VERSION` into a message header. The Spark jobs build
their read schemas from the same definitions (`app.spark_schemas`), so a column added here
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
        Field("user_id", description="user id"),
        Field("session_id", description="session id"),
        Field("session_start", description="session start, epoch milliseconds"),
        Field("session_size", description="number of clicks the session declares"),
        Field("click_article_id", description="the clicked article"),
        Field("click_timestamp", description="click time, epoch milliseconds"),
        Field("click_environment", description="environment code"),
        Field("click_deviceGroup", description="device group code"),
        Field("click_os", description="operating system code"),
        Field("click_country", description="country code"),
        Field("click_region", description="region code"),
        Field("click_referrer_type", description="referrer type code"),
    ),
)

ARTICLES = RecordSchema(
    name="articles",
    key="article_id",  # the metadata topic is compacted: the latest record per article wins
    fields=(
        Field("article_id", description="article id"),
        Field("category_id", description="category id"),
        Field("created_at_ts", description="creation time, epoch milliseconds"),
        Field("publisher_id", description="publisher id"),
        Field("words_count", description="number of words"),
    ),
)

# Kafka message headers the producer sets on every data message
HEADER_SOURCE_FILE = "source_file"
HEADER_SOURCE_LINE = "source_line"
HEADER_SCHEMA_VERSION = "schema_version"
HEADER_FILE_VERSION = "file_version"
