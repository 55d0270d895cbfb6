"""Terminal chat: streamed replies, history, slash commands, and a real pseudo-terminal session."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest
import torch

from dpokit.chat import ChatSession, run_chat
from dpokit.generate import SamplingSettings, generate_answers
from dpokit.render import Renderer

GREEDY = SamplingSettings(max_new_tokens=12, do_sample=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lively(tiny_model_dir, tmp_path_factory):
    """The tiny model with larger random weights, so replies vary with the conversation."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.3
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_streamed_reply_equals_batch_generation_and_builds_history(lively):
    model, tokenizer = lively
    session = ChatSession(model, tokenizer, GREEDY, system="Be brief.")
    pieces = list(session.reply_stream("Hello, who are you?"))
    first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, who are you?"}]
    expected = generate_answers(model, tokenizer, [first], max_new_tokens=12)[0]
    assert len(pieces) > 1  # streamed, not delivered at once
    assert "".join(pieces).strip() == expected
    assert session.history == [first[1], {"role": "assistant", "content": expected}]
    # The next turn is answered in the light of the whole conversation.
    second = "".join(session.reply_stream("And what can you do?")).strip()
    conversation = first + [{"role": "assistant", "content": expected}, {"role": "user", "content": "And what can you do?"}]
    assert second == generate_answers(model, tokenizer, [conversation], max_new_tokens=12)[0]
    assert len(session.history) == 4
    session.reset()
    assert session.history == [] and session.messages() == [first[0]]


def test_stop_ends_a_reply_early_and_keeps_the_part_said(lively):
    model, tokenizer = lively
    settings = SamplingSettings(max_new_tokens=60, do_sample=False)
    full = "".join(ChatSession(model, tokenizer, settings).reply_stream("Tell me a long story.")).strip()
    session = ChatSession(model, tokenizer, settings)
    stream = session.reply_stream("Tell me a long story.")
    said = next(stream)
    session.stop()
    said += "".join(stream)
    assert len(said.strip()) < len(full)
    assert full.startswith(said.strip())
    assert session.history[-1] == {"role": "assistant", "content": said.strip()}


def test_long_history_drops_oldest_turns_to_fit_the_context(lively, monkeypatch):
    model, tokenizer = lively
    session = ChatSession(model, tokenizer, GREEDY)
    for i in range(6):
        session.history += [{"role": "user", "content": f"question {i} " * 10}, {"role": "assistant", "content": f"answer {i} " * 10}]
    session.history.append({"role": "user", "content": "last question"})
    full = len(Renderer(tokenizer).prompt_ids(session.messages()))
    monkeypatch.setattr(model.config, "max_position_embeddings", full // 2 + GREEDY.max_new_tokens)
    ids = session._prompt_ids()
    assert len(ids) + GREEDY.max_new_tokens <= model.config.max_position_embeddings
    assert session.history[-1]["content"] == "last question"
    assert session.history[0]["role"] == "user" and "question 0" not in session.history[0]["content"]


def _scripted(lines):
    """A read() for run_chat: returns the lines, then raises what the last item is (an exception class)."""
    items = iter(lines)

    def read(prompt):
        item = next(items)
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item()
        return item

    return read


def test_commands(lively, capsys):
    model, tokenizer = lively
    session = ChatSession(model, tokenizer, GREEDY)
    lines = ["hello", "", "/system Answer in French.", "/system", "/help", "/bogus", "/reset", "/exit", "never read"]
    assert run_chat(session, read=_scripted(lines)) == 0
    out = capsys.readouterr().out
    assert "assistant> " in out
    assert "(system prompt set)" in out and "(system prompt: 'Answer in French.')" in out
    assert "/reset" in out and "/exit" in out  # the help text
    assert "unknown command /bogus" in out and "(history cleared)" in out
    assert session.system == "Answer in French." and session.history == []


@pytest.mark.parametrize("ending", [EOFError, KeyboardInterrupt])
def test_ctrl_d_and_ctrl_c_at_the_prompt_end_cleanly(lively, ending):
    model, tokenizer = lively
    session = ChatSession(model, tokenizer, GREEDY)
    assert run_chat(session, read=_scripted(["hi", ending])) == 0
    assert len(session.history) == 2


# ---------------------------------------------------------------- a real terminal


class Terminal:
    """`dpokit chat` in a subprocess whose controlling terminal is a pseudo-terminal."""

    def __init__(self, *args: str):
        import fcntl
        import termios

        self.master, slave = os.openpty()

        def own_terminal():  # so that Ctrl-C on the terminal sends SIGINT, as in a real shell
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # A suite started in the background of a non-interactive shell (`cmd &`) inherits SIGINT
            # ignored, and Python then never raises KeyboardInterrupt; a shell's foreground job has it.
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        env = dict(os.environ, TERM="dumb", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dpokit.cli", "chat", *args],
            stdin=slave, stdout=slave, stderr=slave, preexec_fn=own_terminal, env=env, close_fds=True,
        )
        os.close(slave)
        self.output = ""

    def read_until(self, text: str, start: int = 0, timeout: float = 180) -> int:
        """Read until ``text`` appears after offset ``start``; return the offset just past it."""
        deadline = time.monotonic() + timeout
        while text not in self.output[start:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; output so far:\n{self.output}")
            ready, _, _ = select.select([self.master], [], [], min(remaining, 1.0))
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"chat exited ({self.proc.returncode}) before {text!r}:\n{self.output}")
                self.output += chunk.decode("utf-8", errors="replace").replace("\r", "")
        return self.output.index(text, start) + len(text)

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def wait(self, timeout: float = 60):
        """The exit status, or None if still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.master, 4096).decode("utf-8", errors="replace").replace("\r", "")
                except OSError:
                    pass
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal():
    made = []

    def start(*args):
        made.append(Terminal(*args))
        return made[-1]

    yield start
    for t in made:
        t.close()


def test_chat_in_a_terminal_streams_resets_and_exits_on_ctrl_d(terminal, tiny_lora_run):
    term = terminal(str(tiny_lora_run), "--temperature", "0", "--max-new-tokens", "8", "--system", "Be brief.")
    pos = term.read_until("you> ")
    term.send("Hello there!\n")
    pos = term.read_until("assistant> ", pos)
    end = term.read_until("you> ", pos)
    reply = term.output[pos:end - len("you> ")].strip()
    assert reply  # the LoRA run's (random) reply was streamed
    term.send("/reset\n")
    pos = term.read_until("(history cleared)", end)
    term.read_until("you> ", pos)
    term.send("\x04")  # Ctrl-D
    assert term.wait() == 0
    assert "Traceback" not in term.output


def test_ctrl_c_stops_a_reply_then_leaves(terminal, tiny_lora_run):
    # A long reply to interrupt: the random model loops at once, so the repetition guard is switched off.
    term = terminal(str(tiny_lora_run), "--temperature", "0", "--max-new-tokens", "1900", "--repetition-window", "0")
    pos = term.read_until("you> ")
    term.send("Tell me everything.\n")
    pos = term.read_until("assistant> ", pos)
    pos = term.read_until(" ", pos)  # the reply has started streaming
    term.send("\x03")  # Ctrl-C while streaming: stops the reply, the chat goes on
    pos = term.read_until("[stopped]", pos)
    term.read_until("you> ", pos)
    # Ctrl-C at the prompt: leaves. CPython's readline can miss a SIGINT that lands between
    # drawing the prompt and waiting for keys (a race no typist hits), so press it again if needed.
    for _ in range(3):
        time.sleep(0.5)
        term.send("\x03")
        if term.wait(timeout=10) is not None:
            break
    assert term.proc.returncode == 0
    assert "Traceback" not in term.output
