"""The label store: canonical preference lines, ties/skips apart, idempotency, torn lines, restarts,
kill -9 and SIGTERM of a real `dpokit serve` process, and `dpokit train` / `data inspect` reading the file."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from serve_support import ServerProcess, read_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["How do I boil an egg?", "Name a prime number.", "What is the capital of France?"]


def candidates(a="Boil it for 7 minutes.", b="Eggs are birds."):
    from dpokit.serve.labels import Candidate

    return (Candidate("tuned", a, {"temperature": 0.7, "max_tokens": 64}),
            Candidate("base", b, {"temperature": 0.7, "max_tokens": 64}))


def decide(store, item, decision, chosen_content=None, labeler="ana", left="Boil it for 7 minutes.",
           right="Eggs are birds."):
    from dpokit.serve.labels import Decision

    l, r = candidates(left, right)
    return store.append(Decision(item.id, decision, l, r, labeler, chosen_content))


@pytest.fixture()
def prompts_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def open_store(directory, prompts_file=None):
    from dpokit.prompts import read_prompt_records
    from dpokit.serve.labels import LabelStore

    return LabelStore(directory, read_prompt_records(prompts_file) if prompts_file else ())


def test_pairs_in_canonical_format_ties_and_skips_apart(tmp_path, prompts_file):
    store = open_store(tmp_path / "labels", prompts_file)
    items = store.pending()
    assert [i.prompt for i in items] == [[{"role": "user", "content": p}] for p in PROMPTS]
    assert items[0].source.endswith("prompts.txt:1")

    first = decide(store, items[0], "left")
    second = decide(store, items[1], "right", chosen_content="7 is a prime number.",
                    left="Eight.", right="Seven")
    tie = decide(store, items[2], "tie")
    assert (first.created, second.created, tie.created) == (True, True, True)
    assert (first.file, tie.file) == ("preferences.jsonl", "decisions.jsonl")

    pairs = read_jsonl(tmp_path / "labels" / "preferences.jsonl")
    assert len(pairs) == 2
    left = pairs[0]
    assert left["prompt"] == [{"role": "user", "content": PROMPTS[0]}]
    assert left["chosen"] == [{"role": "assistant", "content": "Boil it for 7 minutes."}]
    assert left["rejected"] == [{"role": "assistant", "content": "Eggs are birds."}]
    assert (left["chosen_model"], left["rejected_model"], left["decision"]) == ("tuned", "base", "left")
    assert left["labeler"] == "ana" and left["created_at"].endswith("Z") and left["edited"] is False
    assert left["sampling"] == {"chosen": {"temperature": 0.7, "max_tokens": 64},
                                "rejected": {"temperature": 0.7, "max_tokens": 64}}
    assert left["item_id"] == items[0].id
    right = pairs[1]
    assert right["chosen"][0]["content"] == "7 is a prime number." and right["edited"] is True
    assert right["original_chosen"] == "Seven" and right["chosen_model"] == "base"
    assert right["rejected"][0]["content"] == "Eight."

    (recorded_tie,) = read_jsonl(tmp_path / "labels" / "decisions.jsonl")
    assert recorded_tie["decision"] == "tie" and "chosen" not in recorded_tie
    assert recorded_tie["left"]["model"] == "tuned" and recorded_tie["right"]["content"] == "Eggs are birds."
    assert store.pending() == [] and store.done_ids() == {i.id for i in items}
    assert store.counts() == {"queued": 3, "done": 3, "pairs": 2, "ties_and_skips": 1}
    store.close()


def test_one_decision_per_item(tmp_path, prompts_file):
    store = open_store(tmp_path, prompts_file)
    item = store.pending()[0]
    first = decide(store, item, "left")
    again = decide(store, item, "right")  # a double click, a second tab, a reload
    assert again.created is False and again.record == first.record
    assert len(read_jsonl(tmp_path / "preferences.jsonl")) == 1
    store.close()


def test_concurrent_decisions_on_one_item_write_one_line(tmp_path, prompts_file):
    store = open_store(tmp_path, prompts_file)
    item = store.pending()[0]
    results = []
    threads = [threading.Thread(target=lambda: results.append(decide(store, item, "left").created)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len(read_jsonl(tmp_path / "preferences.jsonl")) == 1
    store.close()


@pytest.mark.parametrize("decision, kwargs, message", [
    ("left", {"labeler": " "}, "labeler"),
    ("maybe", {}, "decision must be one of"),
    ("left", {"chosen_content": "  "}, "the better answer is empty"),
    ("left", {"left": "Same.", "right": "Same."}, "the two answers are the same"),
    ("left", {"right": ""}, "the other answer is empty"),
])
def test_bad_decisions_are_refused_and_write_nothing(tmp_path, prompts_file, decision, kwargs, message):
    from dpokit.errors import DpokitError

    store = open_store(tmp_path, prompts_file)
    with pytest.raises(DpokitError, match=message):
        decide(store, store.pending()[0], decision, **kwargs)
    assert not (tmp_path / "preferences.jsonl").exists() and len(store.pending()) == 3
    store.close()


def test_typed_prompts_survive_a_restart_and_the_queue_resumes(tmp_path, prompts_file):
    store = open_store(tmp_path, prompts_file)
    typed, created = store.add_prompt("A prompt typed on the page", added_by="ana")
    assert created and store.add_prompt("A prompt typed on the page")[1] is False
    given, _ = store.add_prompt([{"role": "user", "content": "With its own answers"}], candidates=candidates())
    decide(store, store.pending()[0], "left")
    decide(store, store.pending()[0], "skip")
    store.close()

    again = open_store(tmp_path, prompts_file)
    pending = again.pending()
    assert [i.prompt[0]["content"] for i in pending] == [PROMPTS[2], "A prompt typed on the page",
                                                         "With its own answers"]
    assert pending[2].candidates[0].content == "Boil it for 7 minutes." and pending[2].id == given.id
    assert pending[1].id == typed.id
    again.close()


def test_a_second_server_on_the_same_labels_dir_is_refused(tmp_path):
    from dpokit.errors import DpokitError

    store = open_store(tmp_path)
    with pytest.raises(DpokitError, match="in use by another dpokit serve"):
        open_store(tmp_path)
    store.close()
    open_store(tmp_path).close()  # released


def test_a_torn_last_line_is_cut_and_kept_aside(tmp_path, prompts_file):
    store = open_store(tmp_path, prompts_file)
    decide(store, store.pending()[0], "left")
    store.close()
    path = tmp_path / "preferences.jsonl"
    good = path.read_bytes()
    path.write_bytes(good + b'{"prompt": [{"role": "user", "content": "half a li')  # killed mid-write

    again = open_store(tmp_path, prompts_file)
    assert path.read_bytes() == good
    assert (tmp_path / "preferences.jsonl.torn").read_bytes().startswith(b'{"prompt"')
    assert any("torn" in note for note in again.repaired)
    assert len(again.pending()) == 2
    again.close()


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path, prompts_file):
    store = open_store(tmp_path, prompts_file)
    decide(store, store.pending()[0], "left")
    store.close()
    path = tmp_path / "preferences.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    again = open_store(tmp_path, prompts_file)
    assert len(read_jsonl(path)) == 1 and len(again.pending()) == 2
    again.close()


def test_a_damaged_line_in_the_middle_is_an_error_naming_it(tmp_path, prompts_file):
    from dpokit.errors import DpokitError

    store = open_store(tmp_path, prompts_file)
    decide(store, store.pending()[0], "left")
    decide(store, store.pending()[0], "left")
    store.close()
    path = tmp_path / "preferences.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0][:20] + "\n" + lines[1])
    with pytest.raises(DpokitError, match=r"preferences.jsonl:1: invalid JSON"):
        open_store(tmp_path, prompts_file)


def test_train_and_data_inspect_read_the_labels_as_they_are(tmp_path, prompts_file, capsys, tiny_model_dir):
    from dpokit.cli import main
    from dpokit.data.load import load_preference_data

    store = open_store(tmp_path / "labels", prompts_file)
    items = store.pending()
    decide(store, items[0], "left")
    decide(store, items[1], "right", left="Four.", right="Seven.")
    decide(store, items[2], "tie")
    store.close()
    path = tmp_path / "labels" / "preferences.jsonl"

    result = load_preference_data([str(path)])
    assert result.format == "conversational" and len(result.pairs) == 2 and not result.dropped
    assert result.pairs[1].chosen == [{"role": "assistant", "content": "Seven."}]
    assert result.pairs[0].meta["chosen_model"] == "tuned" and result.pairs[0].meta["labeler"] == "ana"

    assert main(["data", "inspect", str(path), "--model", tiny_model_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 2 and report["format"] == "conversational"


# ---------------------------------------------------------------- a real server process


def post_decision(url, item, decision, left="An answer.", right="Another answer."):
    body = {"item_id": item["id"], "decision": decision, "labeler": "ana",
            "left": {"model": "tiny", "content": left, "sampling": {"temperature": 0.7}},
            "right": {"model": "tiny", "content": right, "sampling": {"temperature": 0.7}}}
    response = httpx.post(url + "/api/label/decisions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_labels_survive_kill_9_and_a_restart_and_sigterm_finishes_the_stream(tmp_path, prompts_file, tiny_model_dir):
    labels = tmp_path / "labels"
    args = [f"tiny={tiny_model_dir}", "--labels-dir", str(labels), "--prompts", str(prompts_file)]
    first = ServerProcess(["--model", *args], cwd=tmp_path).wait_ready()
    try:
        queue = httpx.get(first.url + "/api/label/queue", timeout=30).json()
        assert len(queue["pending"]) == 3
        assert post_decision(first.url, queue["pending"][0], "left")["saved"] is True
        assert post_decision(first.url, queue["pending"][1], "skip")["saved"] is True
        first.kill9()  # no shutdown code runs: what is on disk is what the fsyncs put there
    finally:
        first.close()
    assert len(read_jsonl(labels / "preferences.jsonl")) == 1
    assert len(read_jsonl(labels / "decisions.jsonl")) == 1
    with open(labels / "preferences.jsonl", "ab") as handle:  # as a kill in the middle of a write leaves it
        handle.write(b'{"prompt": [{"role": "us')

    second = ServerProcess(["--model", *args], cwd=tmp_path).wait_ready()
    try:
        queue = httpx.get(second.url + "/api/label/queue", timeout=30).json()
        assert [i["prompt"][0]["content"] for i in queue["pending"]] == [PROMPTS[2]]
        assert queue["counts"] == {"queued": 3, "done": 2, "pairs": 1, "ties_and_skips": 1}
        done_item = {"id": read_jsonl(labels / "preferences.jsonl")[0]["item_id"]}
        assert post_decision(second.url, done_item, "right")["saved"] is False  # nothing duplicated
        assert len(read_jsonl(labels / "preferences.jsonl")) == 1
        assert "cut a torn last line" in second.output()

        # SIGTERM during a streamed answer: the answer is finished, then the server exits cleanly.
        body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 40, "stream": True}
        with httpx.stream("POST", second.url + "/v1/chat/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            second.proc.send_signal(15)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert any('"finish_reason":"length"' in line for line in rest)
        # uvicorn shuts down, then re-raises SIGTERM (so the exit status says how the process ended)
        assert second.proc.wait(60) in (0, -15)
        assert "stopped: requests in flight finished, every label is on disk" in second.output()
    finally:
        second.close()
    assert len(read_jsonl(labels / "preferences.jsonl")) == 1
    open_store(labels).close()  # the lock was released
