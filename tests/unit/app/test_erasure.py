"""Erasure requests: the user ids a request names (bad ones refused, naming them) and the keyed
hash that stands for a forgotten user."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from app.erasure import MAX_USERS_PER_REQUEST, ErasureRequestError, erasure_key, key_file, parse_user_ids, user_hash
from tests.conftest import isolated_settings


def test_user_ids_are_read_from_each_argument_and_comma_or_space_lists_once_each() -> None:
    assert parse_user_ids(["123"]) == [123]
    assert parse_user_ids(["123,456", " 789 ", "456"]) == [123, 456, 789]
    assert parse_user_ids(["1 2\t3"]) == [1, 2, 3]


@pytest.mark.parametrize(
    ("texts", "named"),
    [
        ([], "no user id given"),
        ([""], "an empty user id in ''"),
        (["  "], "an empty user id"),
        (["12,,13"], "an empty user id in '12,,13'"),
        (["abc"], "user id 'abc' is not a whole number"),
        (["-3"], "user id '-3' is not a whole number"),
        (["1.5"], "user id '1.5' is not a whole number"),
        (["12;DROP"], "user id '12;DROP' is not a whole number"),
        (["1" * 19], "is not a whole number"),
    ],
)
def test_an_empty_or_malformed_id_is_refused_naming_it(texts: list[str], named: str) -> None:
    with pytest.raises(ErasureRequestError, match=named.replace("(", r"\(")):
        parse_user_ids(texts)


def test_a_request_is_bounded() -> None:
    parse_user_ids([",".join(str(n) for n in range(MAX_USERS_PER_REQUEST))])
    with pytest.raises(ErasureRequestError, match="split it"):
        parse_user_ids([",".join(str(n) for n in range(MAX_USERS_PER_REQUEST + 1))])


def test_the_key_is_generated_once_private_and_kept_unless_set(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    first = erasure_key(settings)
    assert len(first) >= 32 and erasure_key(settings) == first
    assert stat.S_IMODE(key_file(tmp_path).stat().st_mode) == 0o600
    assert [p.name for p in key_file(tmp_path).parent.iterdir()] == ["key"]  # no temporary left
    assert erasure_key(replace(settings, erasure_key="set-by-hand")) == "set-by-hand"


def test_the_hash_depends_on_the_key_and_hides_the_id() -> None:
    assert user_hash("k", 7) == user_hash("k", 7) != user_hash("k", 8)
    assert user_hash("k", 7) != user_hash("other", 7)
    assert len(user_hash("k", 7)) == 64 and int(user_hash("k", 7), 16) >= 0  # hex sha256
