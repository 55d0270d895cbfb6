"""Terminal chat: streamed replies, history, and a few slash commands.

The reply is generated in a worker thread that feeds a
``transformers.TextIteratorStreamer``; the main thread prints text as it arrives. Ctrl-C
while a reply streams stops that reply (the chat goes on); Ctrl-C or Ctrl-D at the
prompt ends the chat.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable, Iterator, Optional, TextIO

from dpokit.generate import (Message, SamplingSettings, generation_config, model_device, stopping_criteria,
                             trim_repetition)
from dpokit.render import as_renderer

HELP = """commands:
  /system TEXT   set the system prompt (keeps the history); /system alone shows it
  /reset         forget the conversation so far
  /help          this help
  /exit          leave (also Ctrl-D, or Ctrl-C at the prompt)"""


class ChatSession:
    """A conversation with one model: history, system prompt, streamed replies."""

    def __init__(self, model, renderer, settings: SamplingSettings, system: Optional[str] = None,
                 seed: Optional[int] = None):
        """``renderer``: the model's :class:`~dpokit.render.Renderer` (or a bare tokenizer);
        ``system`` defaults to the run's own system prompt."""
        self.model = model
        self.renderer = as_renderer(renderer)
        self.tokenizer = self.renderer.tokenizer
        self.settings = settings
        self.system = system if system is not None else self.renderer.system_prompt
        self.history: list[Message] = []
        self.seed = seed
        self.looped = False
        """Whether the last reply was stopped because it started repeating itself."""
        self._stop = threading.Event()

    def messages(self) -> list[Message]:
        """System prompt (if any) + history, as the chat template receives them."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history

    def reset(self) -> None:
        self.history.clear()

    def stop(self) -> None:
        """Ask a reply being generated to stop after its current token."""
        self._stop.set()

    def _prompt_ids(self) -> list[int]:
        """The conversation's tokens, dropping the oldest turns if it outgrows the context."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        ids = self.renderer.prompt_ids(self.messages())
        while limit and len(ids) + self.settings.max_new_tokens > limit and len(self.history) > 1:
            # Drop the oldest user turn and the answer that followed it.
            del self.history[:2]
            ids = self.renderer.prompt_ids(self.messages())
        return ids

    def reply_stream(self, user_text: str) -> Iterator[str]:
        """Add a user turn, yield the reply's text pieces as they are generated.

        When the stream ends, or is interrupted, the text yielded so far is added to the history.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop_event = self._stop
        stop_event.clear()

        class _StopOnRequest(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop_event.is_set()

        self.history.append({"role": "user", "content": user_text})
        ids = self._prompt_ids()
        device = model_device(self.model)
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        gen_cfg = generation_config(self.model, self.tokenizer, self.settings)
        criteria, guard = stopping_criteria(self.settings, input_ids.shape[1], _StopOnRequest())
        self.looped = False
        if self.seed is not None:
            torch.manual_seed(self.seed + len(self.history))
        errors: list[BaseException] = []
        outputs: list = []

        def work():
            try:
                with torch.inference_mode():
                    outputs.append(self.model.generate(
                        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=gen_cfg,
                        streamer=streamer, stopping_criteria=StoppingCriteriaList(criteria),
                    ))
            except BaseException as err:  # re-raised in the main thread
                errors.append(err)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        pieces: list[str] = []
        finished = False
        try:
            thread.start()
            for piece in streamer:
                pieces.append(piece)
                yield piece
            finished = True
        finally:
            if not finished and thread.is_alive():  # interrupted: stop generating; keep what was shown
                self.stop()
                for _ in streamer:  # let the worker finish putting its last pieces
                    pass
            if thread.ident is not None:
                thread.join()
            reply = "".join(pieces).strip()
            if guard is not None and guard.fired and outputs:
                # The reply started looping: keep one copy in the history, not the repeat that was shown.
                self.looped = True
                special = set(self.tokenizer.all_special_ids)
                tokens = [t for t in outputs[0][0, input_ids.shape[1]:].tolist() if t not in special]
                reply = self.tokenizer.decode(trim_repetition(tokens, guard.window), skip_special_tokens=True).strip()
            self.history.append({"role": "assistant", "content": reply})
        if errors:
            raise errors[0]


def run_chat(session: ChatSession, *, read: Callable[[str], str] = input, out: Optional[TextIO] = None,
             user_prompt: str = "you> ", bot_prompt: str = "assistant> ") -> int:
    """The read-reply loop. Returns the exit status (0 on /exit, Ctrl-D or Ctrl-C)."""
    out = out or sys.stdout
    print("dpokit chat: type a message; /help for commands, Ctrl-D to leave.", file=out, flush=True)
    while True:
        try:
            line = read(user_prompt)
        except (EOFError, KeyboardInterrupt):
            print(file=out, flush=True)
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if _command(session, text, out):
                return 0
            continue
        print(bot_prompt, end="", file=out, flush=True)
        stream = session.reply_stream(line)
        started = False
        try:
            for piece in stream:
                if not started:  # no stray whitespace between the label and the reply
                    piece = piece.lstrip()
                    started = bool(piece)
                print(piece, end="", file=out, flush=True)
        except KeyboardInterrupt:
            stream.close()  # stops generation, keeps the partial reply in the history
            print(" [stopped]", end="", file=out)
        if session.looped:
            print(" [stopped: the reply started repeating itself]", end="", file=out)
        print(file=out, flush=True)


def _command(session: ChatSession, text: str, out: TextIO) -> bool:
    """Handle a slash command; True means leave the chat."""
    name, _, arg = text.partition(" ")
    name, arg = name.lower(), arg.strip()
    if name in ("/exit", "/quit"):
        return True
    if name == "/reset":
        session.reset()
        print("(history cleared)", file=out, flush=True)
    elif name == "/system":
        if arg:
            session.system = arg
            print("(system prompt set)", file=out, flush=True)
        else:
            print(f"(system prompt: {session.system!r})", file=out, flush=True)
    elif name == "/help":
        print(HELP, file=out, flush=True)
    else:
        print(f"(unknown command {name}; /help lists the commands)", file=out, flush=True)
    return False
