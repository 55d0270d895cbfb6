"""Identities for caches: which model, which weights, which token ids a cached value was computed from.

A local model is identified by the *contents* of its config and weight files (sha256),
not by names, sizes and modification times: retraining into the same dir, or copying a
model over another of the same size, changes the key. Hashing a large model takes a
while, so each file's digest is remembered in ``dpokit_home()/file-digests.json``, keyed
by (real path, size, mtime, ctime, inode). The status-change time ``ctime`` moves on any
write and cannot be set back by a program (unlike mtime), so a file rewritten in place is
always hashed again.

A hub id is identified by the commit it resolved to (its snapshot in the local Hugging
Face cache, or the hub's answer), never by its name alone: a repository that moves on
must not reuse values computed with older weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from dpokit.data.tokenize import TokenizedPair

IDENTITY_FILES = ("config.json", "adapter_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_DIGESTS_FILE = "file-digests.json"
_lock = threading.Lock()


def _digests_path() -> Path:
    from dpokit.models import dpokit_home

    return dpokit_home() / _DIGESTS_FILE


def _load_digests() -> dict[str, str]:
    try:
        data = json.loads(_digests_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_digest(path: Path) -> str:
    """sha256 of a file's contents (remembered while the file's stat is unchanged)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}"
    with _lock:
        known = _load_digests()
        if key in known:
            return known[key]
    with open(real, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    with _lock:
        known = _load_digests()
        known = {k: v for k, v in known.items() if not k.startswith(f"{real}|")}  # older versions of this file
        known[key] = digest
        try:
            from dpokit.outputs import write_json

            write_json(_digests_path(), known)
        except Exception:  # a cache of digests is an optimisation; failing to store one is not an error
            pass
    return digest


def dir_fingerprint(path: Path) -> str:
    """sha256 over a model or adapter dir's config and weight files (names and contents)."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if not file.is_file():
            continue
        if file.name in IDENTITY_FILES or file.suffix in WEIGHT_SUFFIXES or file.name.endswith(".index.json"):
            digest.update(f"{file.name}={file_digest(file)}\n".encode())
    return digest.hexdigest()


def adapter_fingerprint(path: Path) -> str:
    """sha256 of a LoRA adapter dir's weights and settings, leaving out the base path it names.

    ``adapter_config.json``'s ``base_model_name_or_path`` says where the adapter was trained,
    not what it is: a run's ``base/`` copy (which names the portable base) and the adapter it
    was copied from are the same adapter, and merge into the same cache dir.
    """
    path = Path(path)
    digest = hashlib.sha256()
    config_path = path / "adapter_config.json"
    if config_path.is_file():
        settings = json.loads(config_path.read_text(encoding="utf-8"))
        settings.pop("base_model_name_or_path", None)
        digest.update(json.dumps(settings, sort_keys=True).encode())
    for file in sorted(path.iterdir()):
        if file.is_file() and (file.suffix in WEIGHT_SUFFIXES or file.name.endswith(".index.json")):
            digest.update(f"{file.name}={file_digest(file)}\n".encode())
    return digest.hexdigest()


def hub_revision(repo_id: str) -> Optional[tuple[str, Optional[Path]]]:
    """``(commit sha, local snapshot dir or None)`` a hub id resolves to, or None when it cannot be told."""
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(repo_id, local_files_only=True))
        return snapshot.name, snapshot
    except Exception:
        pass
    try:
        from huggingface_hub import HfApi

        sha = HfApi().model_info(repo_id).sha
        return (sha, None) if sha else None
    except Exception:
        return None


def model_identity(name_or_path: str) -> dict[str, Any]:
    """What identifies a model's weights: ``{"model", "revision", "files"}``.

    ``files`` is :func:`dir_fingerprint` of the local dir (a hub id's snapshot where it is
    cached); ``revision`` is the hub commit for a hub id. Both are None when they cannot be
    told (a hub id that is neither cached nor reachable): such a model cannot be cached against.
    """
    from dpokit.models import resolve_model_path

    resolved = resolve_model_path(name_or_path)
    path = Path(resolved)
    if path.is_dir():
        return {"model": str(path.resolve()), "revision": None, "files": dir_fingerprint(path)}
    found = hub_revision(resolved)
    if found is None:
        return {"model": resolved, "revision": None, "files": None}
    sha, snapshot = found
    return {"model": resolved, "revision": sha, "files": dir_fingerprint(snapshot) if snapshot else None}


def identity_known(identity: dict[str, Any]) -> bool:
    return identity.get("files") is not None or identity.get("revision") is not None


def data_fingerprint(examples: Sequence["TokenizedPair"]) -> str:
    """sha256 over every pair's prompt, chosen and rejected token ids, in order."""
    import numpy as np

    digest = hashlib.sha256()
    for ex in examples:
        for ids in (ex.prompt_ids, ex.chosen_ids, ex.rejected_ids):
            digest.update(np.asarray(ids, dtype=np.int64).tobytes())
            digest.update(b"|")
        digest.update(b"\n")
    return digest.hexdigest()
