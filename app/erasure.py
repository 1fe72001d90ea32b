"""Forgetting a user: the user ids an erasure request names, and the keyed hash that stands for a
user wherever the pipeline must remember that it forgot them.

The pipeline never writes a forgotten user's id: the `erasures` table (the proof of each request and
the suppression list the Spark jobs check where clicks enter `raw_clicks`) holds
`sha256("<key>:<user_id>")` instead. User ids of the data set are small integers, so a hash without
a secret key would be reversed by hashing every candidate; the key is `CLICKSTREAM_ERASURE_KEY`, or
one generated on first use into `<state>/erasure/key` (mode 600). Every host that runs a Spark job
must use the same key: on a cluster, set it (in `.env.local`) to the same value everywhere.

The Spark side computes the same hash as a column (`spark_jobs.transforms.user_hash`); a unit test
keeps the two equal. The work itself (removing rows, recomputing, recording) is
`spark_jobs/forget_users.py`; this module imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.hours import Hour
from app.settings import Settings

MAX_USERS_PER_REQUEST = 1000  # one request's hashes travel in a broadcast join and its log
USER_ID = re.compile(r"\d{1,18}")  # the data set's user_id: a whole number that fits a bigint


class ErasureRequestError(ValueError):
    """An erasure request that cannot be carried out as given; the message says which id and why."""


def parse_user_ids(texts: Iterable[str]) -> list[int]:
    """The distinct user ids named by `texts` (each one id, or several separated by commas or
    spaces), in the order given. Refuses an empty request, an empty id and an id that is not a whole
    number, naming it; nothing is changed by a refused request."""
    found: list[int] = []
    for text in texts:
        chunks = [chunk.split() for chunk in text.split(",")]
        if any(not words for words in chunks):
            raise ErasureRequestError(f"an empty user id in {text!r}: give one or more user ids, like 123 or 123,456")
        for part in (word for words in chunks for word in words):
            if not USER_ID.fullmatch(part):
                raise ErasureRequestError(
                    f"user id {part!r} is not a whole number (user_id of the clicks, like 123); nothing was changed"
                )
            user = int(part)
            if user not in found:
                found.append(user)
    if not found:
        raise ErasureRequestError("no user id given: name one or more, like 123 or 123,456")
    if len(found) > MAX_USERS_PER_REQUEST:
        raise ErasureRequestError(
            f"{len(found)} user ids in one request; at most {MAX_USERS_PER_REQUEST}: split it into several requests"
        )
    return found


def key_file(state_dir: Path) -> Path:
    return state_dir / "erasure" / "key"


def erasure_key(settings: Settings) -> str:
    """`CLICKSTREAM_ERASURE_KEY`, or the key generated once into the state folder (mode 600)."""
    if settings.erasure_key:
        return settings.erasure_key
    path = key_file(settings.state_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".key-{secrets.token_hex(4)}")
        temporary.write_text(secrets.token_urlsafe(32))
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)  # whole or not at all; of two first uses at once, one key wins
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()


def user_hash(key: str, user_id: int) -> str:
    """How the pipeline writes a forgotten user: hex sha256 of `<key>:<user_id>`."""
    return hashlib.sha256(f"{key}:{user_id}".encode()).hexdigest()


@dataclass(frozen=True)
class ErasureDone:
    """What the last carried-out request for each of some users rewrote (from the `erasures` table)."""

    hours: list[Hour]
    days: list[str]
    rows_removed: int


def erasures_done(settings: Settings, users: list[int]) -> ErasureDone:
    """The hours, days and rows of the latest finished request of each user, read from the
    `erasures` table's files (no Spark); `ErasureRequestError` naming a user with none."""
    from app.hours import parse_hour_key
    from app.metastore import Metastore
    from app.parquet_folders import in_parallel, read_columns

    key = erasure_key(settings)
    wanted = {user_hash(key, user): user for user in users}
    locations = Metastore(settings.hive_metastore_uri, settings.hive_database).partition_locations("erasures")
    columns = ["user_hash", "done_at", "hours", "days", "raw_rows_removed"]
    latest: dict[str, dict[str, Any]] = {}
    for found in in_parallel(lambda location: read_columns(location, columns), list(locations.values())):
        for values in zip(*(found[column] for column in columns), strict=True):
            row = dict(zip(columns, values, strict=True))
            hashed, done_at = row["user_hash"], row["done_at"]
            if (
                hashed in wanted
                and done_at is not None
                and (hashed not in latest or done_at > latest[hashed]["done_at"])
            ):
                latest[hashed] = row
    missing = sorted(user for hashed, user in wanted.items() if hashed not in latest)
    if missing:
        raise ErasureRequestError(f"no finished erasure of user(s) {missing} in {settings.hive_database}.erasures")
    hours = {parse_hour_key(key) for row in latest.values() for key in str(row["hours"] or "").split(",") if key}
    days = {day for row in latest.values() for day in str(row["days"] or "").split(",") if day}
    return ErasureDone(sorted(hours), sorted(days), sum(int(row["raw_rows_removed"] or 0) for row in latest.values()))
