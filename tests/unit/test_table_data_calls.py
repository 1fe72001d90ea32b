"""Table data (the lake, the warehouse, the checkpoints) is reached through the storage layer
(`app/storage.py`), which speaks `hdfs://` as well as local folders, never through `os`, `shutil` or
`pathlib`, which see one local disk (issue 32). This test finds every rename, hard link, recursive
delete and folder listing in `app/` and `spark_jobs/`: each one left must be on something other
than table data, and is listed here with what it works on. A new one fails the test instead of
tying the pipeline to one host again."""

from __future__ import annotations

import re

from app.settings import REPO_ROOT

# renames, hard links, recursive deletes and listings of a local folder
LOCAL_ONLY = re.compile(r"\bos\.(replace|link|rename)\(|\bshutil\.(rmtree|move)\(|\.iterdir\(\)")

# the calls left, none of them on table data: (file, the call's text) -> what it works on
NOT_ON_TABLE_DATA = {
    ("app/erasure.py", "os.link(temporary, path)  # whole or not at all; of two first uses at once, one key wins"): (
        "the erasure key in the local state folder"
    ),
    ("app/tools/bench/common.py", "os.link(path.resolve(), target)"): "the bench's copy of an input CSV",
    ("app/tools/bench/scale.py", "shutil.rmtree(data, ignore_errors=True)"): "the scale run's replicated input CSVs",
    (
        "app/tools/bench/scale.py",
        'shutil.rmtree(scratch / f"fair-{size}x", ignore_errors=True)',
    ): "the fair ceiling's output in the bench's scratch folder, not the pipeline's tables",
    ("app/tools/bench/common.py", 'for proc in Path("/proc").iterdir():'): "the processes of this machine",
    ("app/tools/bench/latency.py", "os.link(path, folder / path.name)"): "the replayed input CSV files",
    ("app/tools/bench/latency.py", "shutil.rmtree(folder, ignore_errors=True)"): "the replay's input folder",
    (
        "app/tools/bench/__main__.py",
        "shutil.rmtree(settings.state_dir, ignore_errors=True)",
    ): "the bench's own services",
}


def local_only_calls() -> set[tuple[str, str]]:
    found = set()
    for folder in ("app", "spark_jobs"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative.startswith("app/runtime/"):
                continue  # the local services' own state folders (Kafka's log, the metastore's Derby), not table data
            found |= {(relative, line.strip()) for line in path.read_text().splitlines() if LOCAL_ONLY.search(line)}
    return found


def test_no_local_only_call_on_table_data() -> None:
    found = local_only_calls()
    new = sorted(found - set(NOT_ON_TABLE_DATA))
    assert not new, f"os/shutil/pathlib calls that see one local disk (use app.storage.Location): {new}"
    assert found == set(NOT_ON_TABLE_DATA), f"gone, take them off the list: {sorted(set(NOT_ON_TABLE_DATA) - found)}"
