"""Helpers for the `dpokit serve` tests: a live server in a thread, a server in a subprocess, tiny runs.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``create_app(state)`` served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, state):
        import uvicorn

        from dpokit.serve.app import create_app

        self.state = state
        self.app = create_app(state)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def build_state(models: Sequence[str] = (), named: Sequence[str] = (), **options):
    """A ServeState for tests: one torch thread in the workers."""
    from dpokit.serve.server import ServeOptions, build_state as build

    return build(ServeOptions(models=models, named_models=named, **options), torch_threads=1, say=lambda _: None)


class ServerProcess:
    """``dpokit serve ...`` in a child process (for kill -9 and SIGTERM)."""

    def __init__(self, args: Sequence[str], cwd: Path, env: Optional[dict] = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(cwd) / f"serve-{self.port}.log"
        full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", **(env or {})}
        self.handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dpokit.cli", "serve", *args, "--port", str(self.port), "--log-level", "warning"],
            cwd=cwd, env=full_env, stdout=self.handle, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dpokit serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"dpokit serve did not answer /health in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self.handle.flush()
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.handle.close()


def copy_run(src: Path, dst: Path, *, system_prompt: Optional[str] = None, perturb_seed: Optional[int] = None) -> Path:
    """A copy of a tiny LoRA run dir, with a system prompt in its config and/or different LoRA weights."""
    shutil.copytree(src, dst)
    if system_prompt is not None:
        import yaml

        from dpokit.config import build_config, dump_config

        raw = yaml.safe_load((dst / "config.yaml").read_text())
        raw.setdefault("data", {})["system_prompt"] = system_prompt
        raw.setdefault("output", {})["output_dir"] = str(dst)
        (dst / "config.yaml").write_text(dump_config(build_config(raw)))
    if perturb_seed is not None:
        import torch
        from safetensors.torch import load_file, save_file

        path = dst / "final" / "adapter_model.safetensors"
        tensors = load_file(str(path))
        generator = torch.Generator().manual_seed(perturb_seed)
        for name, value in tensors.items():
            if "lora_B" in name:
                tensors[name] = torch.randn(value.shape, generator=generator) * 0.5
        save_file(tensors, str(path))
    return dst


def sse_events(raw: str) -> list[str]:
    """The data of each SSE event, checking the framing: ``data: ...`` lines, events ended by a blank line."""
    assert raw.endswith("\n\n"), f"stream must end with a blank line: {raw[-40:]!r}"
    events = []
    for block in raw.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 1 and lines[0].startswith("data: "), f"bad SSE event: {block!r}"
        events.append(lines[0][len("data: "):])
    return events


def read_jsonl(path: Path) -> list[dict]:
    text = Path(path).read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "a JSONL file must end with a newline"
    return [json.loads(line) for line in text.splitlines() if line.strip()]
