"""End to end in a real browser: Debian's headless Chromium, driven by Playwright's Python package.

The page chats (streams, keeps the history over a reload, stops a reply), compares blind (names
revealed after the vote, a tally), labels two pairs with a reload in between (one answer edited
first), skips an item whose answers are hostile HTML (which must stay inert text), then the
JSONL is checked and one DPO training step runs on it.

The browser is required: a missing Chromium FAILS this test. Only outside CI, with
``DPOKIT_SKIP_BROWSER_TESTS=1``, is it skipped. Install: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from serve_support import LiveServer, build_state, read_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PROMPTS = ["How long should I boil an egg?", "Give me a name for a cat."]
HOSTILE = ('<script>window.__xss = "script"</script><img src=x onerror="window.__xss = \'img\'">'
           '<b onmouseover="window.__xss=1">bold?</b>')
TIMEOUT_MS = 60_000


def chromium_path() -> str:
    for candidate in (os.environ.get("DPOKIT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                      shutil.which("chromium") or ""):
        if candidate and Path(candidate).is_file():
            return candidate
    message = "Chromium is not installed: apt-get install -y chromium (the page's end-to-end test needs it)"
    if os.environ.get("DPOKIT_SKIP_BROWSER_TESTS") == "1" and os.environ.get("CI") != "true":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1200, "height": 900},
            # Playwright's waits evaluate strings, which the page's CSP forbids. Without the CSP the
            # hostile-HTML checks also prove that the page itself never inserts HTML.
            bypass_csp=True)
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_lora_run, tiny_model_dir, one_torch_thread):
    root = tmp_path_factory.mktemp("browser-site")
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    state = build_state(named=[f"tuned={tiny_lora_run}", f"base={tiny_model_dir}"], labels_dir=str(root / "labels"),
                        prompts=str(prompts), max_tokens=24)
    from dpokit.serve.labels import Candidate

    # A third queue item whose two answers are hostile HTML (as a model could write them).
    state.labels.add_prompt("Show me some HTML.", candidates=[Candidate("tuned", HOSTILE), Candidate("base", HOSTILE + " 2")])
    with LiveServer(state) as server:
        yield server, root


def assert_inert(page):
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img, main script:not([src]), main b").count() == 0


def test_the_page_end_to_end(site, browser_context, tiny_model_dir, tmp_path):
    server, root = site
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))

    # ---- chat: stream a reply, keep the history over a reload, stop a long reply
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#model option').length === 2")
    page.select_option("#model", "tuned")
    page.fill("#max-tokens", "8")
    page.fill("#input", "Hello there")
    page.press("#input", "Enter")
    page.wait_for_function("document.querySelectorAll('.message.assistant').length === 1 && "
                           "!document.getElementById('send').disabled")
    reply = page.locator(".message.assistant .text").first.text_content()
    assert reply.strip()
    page.reload()
    page.wait_for_function("document.querySelectorAll('.message').length === 2")
    assert page.locator(".message.user .text").text_content() == "Hello there"
    assert page.locator(".message.assistant .text").text_content() == reply
    page.fill("#max-tokens", "1500")
    page.fill("#input", "Now a long answer")
    page.press("#input", "Enter")
    page.wait_for_function("document.querySelectorAll('.message.assistant .text')[1]?.textContent.length > 0")
    page.click("#stop")
    page.wait_for_function("!document.getElementById('send').disabled")
    assert page.locator(".message.assistant .note").last.text_content() == "stopped"

    # ---- chat: a hostile answer is shown as text (the stream is replaced at the network level)
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "tuned",
             "choices": [{"index": 0, "delta": {"content": HOSTILE}, "finish_reason": None}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    page.route("**/v1/chat/completions",
               lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body))
    page.fill("#input", "Say something dangerous")
    page.press("#input", "Enter")
    page.wait_for_function("document.querySelectorAll('.message.assistant').length === 3 && "
                           "!document.getElementById('send').disabled")
    assert page.locator(".message.assistant .text").last.text_content() == HOSTILE
    assert_inert(page)
    page.unroute("**/v1/chat/completions")

    # ---- compare: blind, names revealed after the vote, a tally
    page.goto(server.url + "/compare")
    page.wait_for_function("document.querySelectorAll('#model-b option').length === 2")
    assert page.input_value("#model-a") == "tuned" and page.input_value("#model-b") == "base"
    page.fill("#max-tokens", "6")
    page.fill("#prompt", "Which is better?")
    page.click("#generate")
    page.wait_for_function("!document.getElementById('vote-left').disabled")
    assert page.text_content("#name-left") == "" and page.text_content("#name-right") == ""
    assert page.text_content("#text-left").strip() and page.text_content("#text-right").strip()
    page.keyboard.press("1")
    revealed = {page.text_content("#name-left"), page.text_content("#name-right")}
    assert revealed == {"tuned", "base"}
    row = page.locator("#tally tbody tr")
    assert row.count() == 1 and row.locator("td").nth(3).text_content() == "1"
    winner = page.text_content("#name-left")
    assert f"{winner}: 1" in row.locator("td").nth(1).text_content()

    # ---- label: two pairs with a reload between them
    page.goto(server.url + "/label")
    page.wait_for_function("!document.getElementById('decide-left').disabled")
    assert page.text_content("#prompt") == PROMPTS[0]
    assert page.evaluate("document.activeElement.id") == "labeler"  # the name is asked for first
    page.click("#decide-left")  # no name yet: refused, the name field gets the focus back
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert page.evaluate("document.activeElement.id") == "labeler"
    page.fill("#labeler", "tester")
    page.press("#labeler", "Enter")  # leaves the name field, so the digit keys decide
    assert page.evaluate("document.activeElement.id") != "labeler"
    left_answer = page.text_content("#text-left")
    page.keyboard.press("1")
    page.wait_for_function(f"document.getElementById('prompt').textContent === {json.dumps(PROMPTS[1])} && "
                           "!document.getElementById('decide-left').disabled")
    assert "saved: left" in page.text_content("#status")

    page.reload()  # picks up where it stopped, the name remembered
    page.wait_for_function("!document.getElementById('decide-left').disabled")
    assert page.text_content("#prompt") == PROMPTS[1] and page.input_value("#labeler") == "tester"
    original_right = page.text_content("#text-right")
    page.click("#edit-right")
    page.fill("#editor-right", "Whiskers.")
    page.press("#editor-right", "Escape")
    assert page.text_content("#text-right") == "Whiskers."
    page.keyboard.press("2")

    # ---- label: hostile answers stay inert text; skip them
    page.wait_for_function("document.getElementById('prompt').textContent === 'Show me some HTML.' && "
                           "!document.getElementById('decide-skip').disabled")
    assert {page.text_content("#text-left"), page.text_content("#text-right")} == {HOSTILE, HOSTILE + " 2"}
    assert_inert(page)
    page.keyboard.press("4")
    page.wait_for_function("document.getElementById('status').textContent.includes('queue is empty')")
    page.reload()
    page.wait_for_function("document.getElementById('progress').textContent.includes('3 decided')")
    assert page.locator("#item").is_hidden()
    assert_inert(page)
    assert errors == []

    # ---- the JSONL, as written
    pairs = read_jsonl(root / "labels" / "preferences.jsonl")
    assert len(pairs) == 2
    first, second = pairs
    assert first["prompt"] == [{"role": "user", "content": PROMPTS[0]}]
    assert first["chosen"] == [{"role": "assistant", "content": left_answer}] and first["decision"] == "left"
    assert first["labeler"] == "tester" and {first["chosen_model"], first["rejected_model"]} == {"tuned", "base"}
    assert first["sampling"]["chosen"] == {"temperature": 0.7, "max_tokens": 24}
    assert second["chosen"] == [{"role": "assistant", "content": "Whiskers."}] and second["edited"] is True
    assert second["original_chosen"] == original_right and second["decision"] == "right"
    (skip,) = read_jsonl(root / "labels" / "decisions.jsonl")
    assert skip["decision"] == "skip" and skip["prompt"][0]["content"] == "Show me some HTML."

    # ---- one DPO step on it
    from dpokit.config import build_config
    from dpokit.recipe import train

    config = build_config({
        "model": {"name_or_path": tiny_model_dir},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"train_files": [str(root / "labels" / "preferences.jsonl")], "max_length": 96,
                 "max_prompt_length": 48},
        "training": {"max_steps": 1, "per_device_train_batch_size": 2, "report_to": "none"},
        "output": {"output_dir": str(tmp_path / "run")},
    })
    run_dir = train(config, show_progress=False)
    metrics = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if m.get("split", "train") == "train" and "loss" in m]
    assert steps and steps[-1]["step"] == 1
    assert (Path(run_dir) / "final" / "adapter_config.json").is_file()
