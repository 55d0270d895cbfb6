"""The label store: a queue of prompts to label, and the decisions people make on them.

A directory (``--labels-dir``, default ``./labels``) holds, with fixed names (nothing in a
request ever names a file):

``preferences.jsonl``  one line per *left* or *right* decision, in dpokit's canonical
                       preference format (TRL conversational), which ``dpokit train`` and
                       ``dpokit data inspect`` read as it is::

                         {"prompt": [{"role": "user", "content": "..."}],
                          "chosen": [{"role": "assistant", "content": "..."}],
                          "rejected": [{"role": "assistant", "content": "..."}],
                          "item_id": "p3f2a...", "decision": "left",
                          "chosen_model": "quickstart", "rejected_model": "smollm2-135m-instruct",
                          "labeler": "ana", "created_at": "2026-12-01T21:58:06Z",
                          "edited": false, "prompt_source": "prompts.jsonl:3",
                          "sampling": {"chosen": {...}, "rejected": {...}}}

                       ``original_chosen`` is added when the person edited the better answer.
                       The scalar fields ride along as each pair's metadata; ``sampling`` (an
                       object) is kept in the file and left out of the metadata by the loader.
``decisions.jsonl``    one line per *tie* or *skip*: recorded (who, when, both answers) but
                       never a training pair, so ``preferences.jsonl`` needs no filtering.
``prompts.jsonl``      prompts typed in on the page (``{"item_id", "prompt", ...}``), so the
                       queue survives a restart. It is a prompts file ``--prompts`` reads too.
``.lock``              held while a server uses the directory (a second one is refused).

Every line is appended with one ``write`` and an ``fsync``
(:func:`dpokit.outputs.append_jsonl`) before the request is answered. A process killed
mid-write can leave only a torn last line: on open it is cut off (its bytes kept in
``FILE.torn``) or, when it is a whole JSON object without its newline, completed.

Each queue item has an id (``p`` + 16 hex digits of the SHA-256 of its messages): the
idempotency key. One decision per item: a second decision for a done item (a double click,
a reload, a restart) returns the first and writes nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from dpokit.errors import DpokitError
from dpokit.outputs import append_bytes, append_jsonl, make_dirs, os_errors

PREFERENCES_FILE = "preferences.jsonl"
DECISIONS_FILE = "decisions.jsonl"
PROMPTS_FILE = "prompts.jsonl"
LOCK_FILE = ".lock"

PAIR_DECISIONS = ("left", "right")
OTHER_DECISIONS = ("tie", "skip")
DECISIONS = PAIR_DECISIONS + OTHER_DECISIONS
MAX_LABELER_LENGTH = 100

Message = dict[str, str]


def item_id(prompt: Sequence[Message]) -> str:
    """The idempotency key of a prompt: the same messages always give the same id."""
    canonical = json.dumps([{"role": m["role"], "content": m["content"]} for m in prompt],
                           ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "p" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Candidate:
    """One answer shown to the person: who wrote it, how it was sampled."""

    model: str
    content: str
    sampling: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "content": self.content, "sampling": dict(self.sampling)}


@dataclass
class QueueItem:
    """A prompt waiting for a decision; ``candidates`` when they were given with it (else the page generates them)."""

    id: str
    prompt: list[Message]
    source: str
    candidates: Optional[list[Candidate]] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "source": self.source}
        if self.candidates is not None:
            out["candidates"] = [c.to_json() for c in self.candidates]
        return out


@dataclass
class Decision:
    """What a person decided about one queue item.

    ``left`` / ``right`` are the candidates as they were shown; ``decision`` is ``left``,
    ``right`` (that side is better), ``tie`` or ``skip``; ``chosen_content`` is the better
    answer as the person edited it (None: not edited).
    """

    item_id: str
    decision: str
    left: Candidate
    right: Candidate
    labeler: str
    chosen_content: Optional[str] = None


@dataclass
class Appended:
    record: dict[str, Any]
    created: bool
    """False when the item was already decided (the first decision is returned)."""
    file: str


class LabelStore:
    """The queue and the decisions of one labels directory (see the module docstring).

    Args:
        directory: the labels dir; created if missing.
        prompts: prompts to queue (e.g. :func:`dpokit.prompts.read_prompt_records` of
            ``--prompts``): anything with ``messages`` and ``source``, or message lists.
    """

    def __init__(self, directory: Union[str, Path], prompts: Sequence[Any] = ()):
        self.dir = make_dirs(Path(directory).expanduser())
        self.preferences_path = self.dir / PREFERENCES_FILE
        self.decisions_path = self.dir / DECISIONS_FILE
        self.prompts_path = self.dir / PROMPTS_FILE
        self._lock = threading.Lock()
        self._lock_fd = self._take_dir_lock()
        self.repaired: list[str] = []
        self._done: dict[str, tuple[str, int]] = {}  # item id -> (file name, line number)
        self._items: dict[str, QueueItem] = {}
        try:
            for path in (self.preferences_path, self.decisions_path, self.prompts_path):
                self._repair(path)
            for path in (self.preferences_path, self.decisions_path):
                for number, record in self._read(path):
                    key = record.get("item_id")
                    if isinstance(key, str):
                        self._done.setdefault(key, (path.name, number))
            for prompt in prompts:
                messages = getattr(prompt, "messages", prompt)
                self._queue(list(messages), getattr(prompt, "source", "prompts"))
            for number, record in self._read(self.prompts_path):
                self._queue(_messages(record.get("prompt"), f"{self.prompts_path}:{number}"),
                            f"{PROMPTS_FILE}:{number}", _candidates(record.get("candidates")))
        except BaseException:
            self.close()
            raise

    # -- the queue

    def items(self) -> list[QueueItem]:
        """Every queued item, in queue order (the prompts file first, then those added)."""
        return list(self._items.values())

    def pending(self) -> list[QueueItem]:
        """The items with no decision yet, in queue order: where a person picks up again."""
        with self._lock:
            return [item for key, item in self._items.items() if key not in self._done]

    def done_ids(self) -> set[str]:
        with self._lock:
            return set(self._done)

    def get(self, key: str) -> Optional[QueueItem]:
        return self._items.get(key)

    def add_prompt(self, prompt: Union[str, Sequence[Message]], *, candidates: Optional[Sequence[Candidate]] = None,
                   added_by: Optional[str] = None) -> tuple[QueueItem, bool]:
        """Queue a prompt (text or messages), durably; returns the item and whether it was new.

        ``candidates`` (two answers) are shown instead of generating new ones.
        """
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        messages = _messages(messages, "prompt")
        if candidates is not None and len(candidates) != 2:
            raise DpokitError(f"a queue item takes exactly 2 candidates (got {len(candidates)})")
        key = item_id(messages)
        with self._lock:
            if key in self._items:
                return self._items[key], False
            row: dict[str, Any] = {"item_id": key, "prompt": messages, "added_at": utc_now()}
            if added_by:
                row["added_by"] = added_by
            if candidates is not None:
                row["candidates"] = [c.to_json() for c in candidates]
            number = self._line_count(self.prompts_path) + 1
            append_jsonl(self.prompts_path, [row])
            item = self._queue(messages, f"{PROMPTS_FILE}:{number}", list(candidates) if candidates else None)
            return item, True

    # -- decisions

    def append(self, decision: Decision) -> Appended:
        """Record a decision durably (fsynced before this returns); idempotent per queue item."""
        item = self._items.get(decision.item_id)
        if item is None:
            raise DpokitError(f"no queued prompt has the id '{decision.item_id}'", "reload the queue")
        if decision.decision not in DECISIONS:
            raise DpokitError(f"decision must be one of {', '.join(DECISIONS)} (got '{decision.decision}')")
        labeler = (decision.labeler or "").strip()
        if not labeler or len(labeler) > MAX_LABELER_LENGTH:
            raise DpokitError(f"labeler: a name of 1 to {MAX_LABELER_LENGTH} characters is required",
                              "type your name once on the label page")
        record, path = self._record(item, decision, labeler)
        with self._lock:
            if item.id in self._done:
                name, number = self._done[item.id]
                return Appended(self._line(self.dir / name, number), False, name)
            number = self._line_count(path) + 1
            append_jsonl(path, [record])
            self._done[item.id] = (path.name, number)
        return Appended(record, True, path.name)

    def preferences(self) -> list[dict[str, Any]]:
        """The recorded pairs (``preferences.jsonl``), in order."""
        return [record for _, record in self._read(self.preferences_path)]

    def decisions(self) -> list[dict[str, Any]]:
        """The recorded ties and skips (``decisions.jsonl``), in order."""
        return [record for _, record in self._read(self.decisions_path)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            files = [name for name, _ in self._done.values()]
            return {"queued": len(self._items), "done": sum(k in self._done for k in self._items),
                    "pairs": files.count(PREFERENCES_FILE), "ties_and_skips": files.count(DECISIONS_FILE)}

    def close(self) -> None:
        """Release the directory (every decision is already on disk)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals

    def _record(self, item: QueueItem, decision: Decision, labeler: str) -> tuple[dict[str, Any], Path]:
        base = {"item_id": item.id, "decision": decision.decision, "labeler": labeler, "created_at": utc_now(),
                "prompt_source": item.source}
        if decision.decision in OTHER_DECISIONS:
            record = {"prompt": item.prompt, **base, "left": decision.left.to_json(), "right": decision.right.to_json()}
            return record, self.decisions_path
        chosen, rejected = ((decision.left, decision.right) if decision.decision == "left"
                            else (decision.right, decision.left))
        content = chosen.content if decision.chosen_content is None else decision.chosen_content
        if not content.strip():
            raise DpokitError("the better answer is empty", "write an answer, or choose skip")
        if not rejected.content.strip():
            raise DpokitError("the other answer is empty: it cannot be the rejected answer of a pair",
                              "choose skip, or generate the answers again")
        if content.strip() == rejected.content.strip():
            raise DpokitError("the two answers are the same: that is no preference to train on", "choose tie or skip")
        edited = decision.chosen_content is not None and decision.chosen_content != chosen.content
        record = {
            "prompt": item.prompt,
            "chosen": [{"role": "assistant", "content": content}],
            "rejected": [{"role": "assistant", "content": rejected.content}],
            **base,
            "chosen_model": chosen.model,
            "rejected_model": rejected.model,
            "edited": edited,
        }
        if edited:
            record["original_chosen"] = chosen.content
        record["sampling"] = {"chosen": dict(chosen.sampling), "rejected": dict(rejected.sampling)}
        return record, self.preferences_path

    def _queue(self, messages: list[Message], source: str, candidates: Optional[list[Candidate]] = None) -> QueueItem:
        key = item_id(messages)
        if key not in self._items:
            self._items[key] = QueueItem(key, messages, source, candidates)
        return self._items[key]

    def _take_dir_lock(self) -> int:
        path = self.dir / LOCK_FILE
        with os_errors(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DpokitError(f"{self.dir}: the labels dir is in use by another dpokit serve",
                              "stop the other server, or give this one its own --labels-dir") from None
        return fd

    def _repair(self, path: Path) -> None:
        """Cut a torn last line (a write killed halfway); complete a whole last object missing its newline."""
        if not path.is_file():
            return
        with os_errors(path, "cannot read"):
            data = path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            whole = isinstance(json.loads(tail.decode("utf-8")), dict)
        except (ValueError, UnicodeDecodeError):
            whole = False
        with os_errors(path):
            if whole:
                append_bytes(path, b"\n")
                self.repaired.append(f"{path.name}: the last line had no newline; completed")
            else:
                torn = path.with_name(path.name + ".torn")
                append_bytes(torn, tail + b"\n")
                with open(path, "r+b") as handle:
                    handle.truncate(cut)
                    handle.flush()
                    os.fsync(handle.fileno())
                self.repaired.append(f"{path.name}: cut a torn last line ({len(tail)} bytes, kept in {torn.name})")

    def _read(self, path: Path):
        """(line number, record) of every line; a damaged line that is not the last is an error."""
        if not path.is_file():
            return
        with os_errors(path, "cannot read"):
            text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DpokitError(f"{path}:{number}: invalid JSON ({err.msg})",
                                  "the file was edited or damaged: fix or remove that line") from None
            if not isinstance(record, dict):
                raise DpokitError(f"{path}:{number}: expected a JSON object", "fix or remove that line")
            yield number, record

    def _line(self, path: Path, number: int) -> dict[str, Any]:
        for n, record in self._read(path):
            if n == number:
                return record
        raise DpokitError(f"{path}:{number}: the recorded decision is missing", "the file was changed while serving")

    @staticmethod
    def _line_count(path: Path) -> int:
        if not path.is_file():
            return 0
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)


def _messages(value: Any, where: str) -> list[Message]:
    """A prompt as messages: a non-empty list of ``{"role", "content"}`` ending with a user turn."""
    if not isinstance(value, list) or not value:
        raise DpokitError(f"{where}: a prompt must be a non-empty list of messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant") \
                or not isinstance(message.get("content"), str):
            raise DpokitError(f"{where}: message {i + 1}: expected {{\"role\": system|user|assistant, \"content\": text}}")
        out.append({"role": message["role"], "content": message["content"]})
    if out[-1]["role"] != "user" or not out[-1]["content"].strip():
        raise DpokitError(f"{where}: the last message must be a user message with text")
    return out


def _candidates(value: Any) -> Optional[list[Candidate]]:
    if not isinstance(value, list) or len(value) != 2:
        return None
    out = []
    for c in value:
        if not isinstance(c, dict) or not isinstance(c.get("content"), str):
            return None
        out.append(Candidate(str(c.get("model", "")), c["content"], dict(c.get("sampling") or {})))
    return out
