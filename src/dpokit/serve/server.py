"""Run the server: load the models, open the label store, warn about unsafe binds, run uvicorn.

Shutdown (SIGTERM or Ctrl-C): uvicorn stops accepting connections and waits up to
``graceful_timeout_s`` for the requests in flight (streams included) to finish; then the
app's lifespan closes the scheduler (queued requests answered 503, a batch still running
after its own timeout cancelled) and the label store. Every label was fsynced before its
request was answered, so a shutdown, or a kill, loses none.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from typing import Optional, Sequence

from dpokit.errors import DpokitError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass
class ServeOptions:
    models: Sequence[str] = ()
    named_models: Sequence[str] = ()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: Optional[str] = None
    labels_dir: Optional[str] = "labels"
    prompts: Optional[str] = None
    cors_origins: Sequence[str] = field(default_factory=tuple)
    dtype: Optional[str] = None
    include_bases: bool = True
    max_batch_size: int = 16
    batch_wait_ms: float = 10.0
    max_body_bytes: int = 4 * 1024 * 1024
    max_tokens: int = 256
    graceful_timeout_s: float = 30.0
    log_level: str = "info"


def say(text: str) -> None:
    print(f"dpokit: {text}", file=sys.stderr, flush=True)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_options(options: ServeOptions) -> None:
    """Refuse bad options before anything is loaded."""
    if not 0 <= options.port <= 65535:
        raise DpokitError(f"--port {options.port}: not a port number", "use 1-65535 (0: any free port)")
    if options.max_batch_size < 1:
        raise DpokitError(f"--max-batch-size must be >= 1 (got {options.max_batch_size})")
    if options.batch_wait_ms < 0:
        raise DpokitError(f"--batch-wait-ms must be >= 0 (got {options.batch_wait_ms})")
    if options.max_tokens < 1:
        raise DpokitError(f"--max-tokens must be >= 1 (got {options.max_tokens})")
    if options.api_key is not None and not options.api_key.strip():
        raise DpokitError("the API key is empty", "give a non-empty --api-key or DPOKIT_API_KEY, or none")
    for origin in options.cors_origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise DpokitError(f"--cors-origin {origin}: expected an origin like http://localhost:3000")


def build_state(options: ServeOptions, *, torch_threads: Optional[int] = None, say=say):
    """Load everything the app serves (models, scheduler, label store)."""
    from dpokit.serve.app import ServeState
    from dpokit.serve.registry import load_registry, parse_specs
    from dpokit.serve.scheduler import Scheduler

    check_options(options)
    specs = parse_specs(options.models, options.named_models)
    from dpokit.runs import open_model_or_run

    for spec in specs:  # a wrong path fails here, before any file is created or weights loaded
        open_model_or_run(spec.ref)
    prompts = []
    if options.prompts:
        from dpokit.prompts import read_prompt_records

        prompts = read_prompt_records(options.prompts)
    labels = None
    if options.labels_dir:
        from dpokit.serve.labels import LabelStore

        labels = LabelStore(options.labels_dir, prompts)
        for note in labels.repaired:
            say(f"labels: {note}")
    try:
        registry = load_registry(specs, dtype=options.dtype,
                                 include_bases=options.include_bases, say=say)
    except BaseException:
        if labels is not None:
            labels.close()
        raise
    scheduler = Scheduler(registry, max_batch_rows=options.max_batch_size, batch_wait_s=options.batch_wait_ms / 1000,
                          torch_threads=torch_threads)
    return ServeState(registry=registry, scheduler=scheduler, labels=labels, api_key=options.api_key,
                      max_body_bytes=options.max_body_bytes, cors_origins=tuple(options.cors_origins),
                      default_max_tokens=options.max_tokens)


def serve(options: ServeOptions) -> int:
    """Load, then serve until SIGTERM / Ctrl-C."""
    import uvicorn

    from dpokit.serve.app import create_app

    check_options(options)
    if not is_loopback(options.host) and not options.api_key:
        say(f"WARNING: listening on {options.host} with no API key: anyone who can reach this machine can use "
            "the models and write labels. Set DPOKIT_API_KEY (or --api-key), or bind to 127.0.0.1.")
    state = build_state(options)
    state.on_close = lambda: say("stopped: requests in flight finished, every label is on disk")
    app = create_app(state)
    host = f"[{options.host}]" if ":" in options.host else options.host
    names = ", ".join(state.registry.names)
    say(f"serving {names}")
    say(f"OpenAI API: http://{host}:{options.port}/v1   page: http://{host}:{options.port}/  "
        f"(/compare, /label)")
    if state.labels is not None:
        counts = state.labels.counts()
        say(f"labels: {state.labels.dir}/ ({counts['pairs']} pairs, {counts['queued'] - counts['done']} prompts "
            "waiting)")
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level=options.log_level,
                            timeout_graceful_shutdown=options.graceful_timeout_s, access_log=False)
    server = uvicorn.Server(config)
    try:
        server.run()  # on SIGTERM uvicorn shuts down, then re-raises the signal: the exit status says SIGTERM
    finally:
        state.close()  # a no-op when the lifespan already closed it
    return 0 if server.started else 1
