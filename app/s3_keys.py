"""The keys of the local S3 store (SeaweedFS, `app/runtime/seaweedfs.py`): generated once, kept in
`<state>/seaweedfs/credentials.json` (mode 600), read by every process that reaches the store
(the settings' `s3_credentials()`, the service that writes the store's identities)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path


def credentials_file(state_dir: Path) -> Path:
    return state_dir / "seaweedfs" / "credentials.json"


def local_credentials(state_dir: Path) -> tuple[str, str]:
    """(access key, secret key) of the local store, generated once and kept (mode 600)."""
    path = credentials_file(state_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {"access_key": "clickstream-" + secrets.token_hex(4), "secret_key": secrets.token_urlsafe(30)}
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(made))
        temporary.chmod(0o600)
        temporary.replace(path)
    kept = json.loads(path.read_text())
    return str(kept["access_key"]), str(kept["secret_key"])
