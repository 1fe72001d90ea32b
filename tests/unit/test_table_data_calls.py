"""Table data (the lake, the warehouse, the checkpoints) is to be reached through a file system that
speaks `hdfs://` and `s3a://` too, never through `os`, `shutil` or `pathlib`, which see one local
disk (issue 32). The calls that still do are listed here, file by file: the list may only shrink,
and a new one fails this test instead of tying the pipeline to one host again."""

from __future__ import annotations

import re

from app.settings import REPO_ROOT

# renames, hard links, recursive deletes and listings of a local folder
LOCAL_ONLY = re.compile(r"\bos\.(replace|link|rename)\(|\bshutil\.(rmtree|move)\(|\.iterdir\(\)")

# what is left to move onto a file-system abstraction (state on 4 Dec 2026)
STILL_LOCAL_ONLY = {
    "app/checkpoint.py": 2,  # the checkpoint's folder and its batch ids
    "app/tools/bench/common.py": 1,  # the bench's copy of a data set
    "app/tools/bench/latency.py": 2,
    "app/tools/bench/view_cost.py": 1,
    "app/tools/bench/__main__.py": 1,
    "spark_jobs/tables.py": 7,  # staging folders, compaction's markers and swaps, hard links
}


def local_only_calls() -> dict[str, int]:
    found: dict[str, int] = {}
    for folder in ("app", "spark_jobs"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative.startswith("app/runtime/"):
                continue  # the local services' own state folders, not table data
            lines = [line for line in path.read_text().splitlines() if LOCAL_ONLY.search(line) and "/proc" not in line]
            if lines:
                found[relative] = len(lines)
    return found


def test_no_new_local_only_call_on_table_data() -> None:
    found = local_only_calls()
    grown = {path: count for path, count in found.items() if count > STILL_LOCAL_ONLY.get(path, 0)}
    assert not grown, f"new os/shutil/pathlib calls that see one local disk (use the file-system layer): {grown}"
    assert found == STILL_LOCAL_ONLY, f"fewer than listed: shrink STILL_LOCAL_ONLY to {found}"
