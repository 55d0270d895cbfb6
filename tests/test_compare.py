"""`dpokit compare`: prompts, judges (fake, stub OpenAI server, reward model), win rate, report."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dpokit import comparison as compare_mod
from dpokit.cli import main
from dpokit.comparison import compare, judge_answers, load_prompts, win_rate
from dpokit.comparison_report import render_html, write_report
from dpokit.stats import wilson_interval
from dpokit.errors import DpokitError
from dpokit.judges import Judgement, make_judge
from dpokit.judges.llm import OpenAIJudge, parse_verdict
from dpokit.judges.reward_model import RewardModelJudge


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("successes, n, low, high", [
    # Newcombe (1998), Statistics in Medicine 17:857-872, table I, method 3 (Wilson score).
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_published_values(successes, n, low, high):
    got_low, got_high = wilson_interval(successes, n)
    assert got_low == pytest.approx(low, abs=6e-5)
    assert got_high == pytest.approx(high, abs=6e-5)


def test_win_rate_counts_ties_as_half():
    result = win_rate(wins=6, losses=2, ties=2, invalid=3)
    assert result.n == 10
    assert result.rate == pytest.approx(0.7)
    assert result.ci95 == pytest.approx(wilson_interval(7, 10))
    assert result.ci95[0] < 0.7 < result.ci95[1]
    assert win_rate(0, 0, 0, invalid=2).rate is None


# ----------------------------------------------------------------------------- prompts


def test_load_prompts_formats_and_limit(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("What is DPO?\n\n  Name a colour.\n")
    prompts = load_prompts(txt, system_prompt="be brief")
    assert [p[-1] for p in prompts] == [{"role": "user", "content": "What is DPO?"},
                                        {"role": "user", "content": "  Name a colour."}]
    assert all(p[0] == {"role": "system", "content": "be brief"} for p in prompts)
    jsonl = tmp_path / "p.jsonl"
    records = [{"prompt": "hi"}, {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                                               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]},
               {"prompt": "third"}]
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    prompts = load_prompts(jsonl, limit=2)
    assert len(prompts) == 2
    assert [m["content"] for m in prompts[1]] == ["q1", "a1", "q2"]  # the answer to compare is the last turn's


def test_load_prompts_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DpokitError, match="empty"):
        load_prompts(empty)
    with pytest.raises(DpokitError, match="not found"):
        load_prompts(tmp_path / "missing.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"answer": "no prompt"}\n')
    with pytest.raises(DpokitError, match=r"bad.jsonl:2: no prompt field"):
        load_prompts(bad)


# ----------------------------------------------------------------------------- a plain fake judge


class LengthJudge:
    """Prefers the longer answer; 'same length' is a tie; '???' in an answer: no verdict."""

    name = "fake:length"

    def __init__(self):
        self.asked = []

    def judge(self, prompts, answers_a, answers_b):
        self.asked += list(zip(answers_a, answers_b))
        out = []
        for a, b in zip(answers_a, answers_b):
            if "???" in a + b:
                out.append(Judgement(None, note="unsure"))
            else:
                out.append(Judgement("A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"))
        return out


def test_judge_answers_counts_wins_losses_ties():
    answers_a = ["short", "a much longer answer", "same", "equal", "x", "???"]
    answers_b = ["longer answer", "short", "same", "EQUAL", "yy", "b"]
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(len(answers_a))]
    judge = LengthJudge()
    judgements, counts = judge_answers(prompts, answers_a, answers_b, judge)
    assert [j.winner for j in judgements] == ["B", "A", "tie", "tie", "B", None]
    assert (counts.wins, counts.losses, counts.ties, counts.invalid) == (2, 1, 2, 1)
    assert counts.rate == pytest.approx(3 / 5)
    # Identical answers are a tie without asking the judge.
    assert ("same", "same") not in judge.asked and len(judge.asked) == 5
    assert judgements[2].note == "identical answers"


def fake_generate(answers: dict):
    def generate(ref, prompts, sampling, **load_options):
        return [answers[ref](p[-1]["content"]) for p in prompts]
    return generate


def test_compare_with_fake_generation_and_judge():
    prompts = [[{"role": "user", "content": w}] for w in ("one", "three", "five")]
    generate = fake_generate({"A": lambda q: q, "B": lambda q: q * 2})
    result = compare("A", "B", prompts, LengthJudge(), {"max_new_tokens": 8}, generate=generate)
    assert [r.answer_b for r in result.rows] == ["oneone", "threethree", "fivefive"]
    assert (result.win_rate.wins, result.win_rate.losses, result.win_rate.ties) == (3, 0, 0)
    data = result.to_json()
    assert data["summary"]["wins"] == 3 and data["summary"]["n"] == 3 and data["summary"]["rate"] == 1.0
    assert data["rows"][0]["winner"] == "B" and data["sampling"] == {"max_new_tokens": 8}
    no_judge = compare("A", "B", prompts, None, generate=generate)
    assert no_judge.win_rate is None and no_judge.rows[0].judgement is None


def test_html_escapes_and_is_self_contained(tmp_path):
    prompts = [[{"role": "user", "content": "<b>bold?</b> & more"}]]
    generate = fake_generate({"A<img>": lambda q: "<script>alert('x')</script>", "B": lambda q: 'a "quoted" answer'})
    result = compare("A<img>", "B", prompts, LengthJudge(), generate=generate)
    page = render_html(result)
    assert "<script>" not in page and "<img>" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold?&lt;/b&gt; &amp; more" in page
    assert "&quot;quoted&quot;" in page
    # Self-contained: inline CSS, no external resources.
    assert "<style>" in page and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page
    path = write_report(result, tmp_path / "sub" / "report.html")
    assert path.read_text() == page


# ----------------------------------------------------------------------------- stub OpenAI server


class StubJudgeServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 that judges by content.

    The answer containing GOOD wins; an answer containing GARBLE gets a reply with no
    verdict; otherwise it says tie. Verdicts refer to the positions *as shown*, so a
    client that un-swaps wrongly gets the counts wrong.
    """

    def __init__(self, models=("judge-1",)):
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, payload, status=200):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send({"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
                else:
                    self._send({"error": "not found"}, 404)

            def do_POST(self):
                length = int(self.headers["Content-Length"])
                request = json.loads(self.rfile.read(length))
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": request})
                if self.path != "/v1/chat/completions":
                    return self._send({"error": "not found"}, 404)
                text = request["messages"][-1]["content"]
                first = re.search(r"<answer_A>\n(.*?)\n</answer_A>", text, re.S).group(1)
                second = re.search(r"<answer_B>\n(.*?)\n</answer_B>", text, re.S).group(1)
                if "GARBLE" in first + second:
                    verdict = "Both are fine I guess."
                elif "GOOD" in first:
                    verdict = "Answer A is more helpful. [[A]]"
                elif "GOOD" in second:
                    verdict = "B"
                else:
                    verdict = "[[tie]]"
                self._send({"id": "x", "object": "chat.completion", "model": request["model"],
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict},
                                         "finish_reason": "stop"}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def stub_server():
    with StubJudgeServer() as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CASES = [  # (answer A, answer B, expected winner)
    ("GOOD answer", "meh", "A"), ("meh", "GOOD answer", "B"), ("fine", "also fine", "tie"),
    ("so-so", "GOOD", "B"), ("GOOD!", "nope", "A"), ("GARBLE", "x", None), ("meh", "GOOD again", "B"),
    ("alpha", "beta", "tie"),
]


def test_openai_judge_counts_and_unswaps(stub_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    judge = make_judge(f"openai:{stub_server.url}#judge-9", seed=3)
    assert isinstance(judge, OpenAIJudge) and judge.model == "judge-9"
    answers_a = [a for a, _, _ in CASES]
    answers_b = [b for _, b, _ in CASES]
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(len(CASES))]
    judgements, counts = judge_answers(prompts, answers_a, answers_b, judge)
    assert [j.winner for j in judgements] == [w for _, _, w in CASES]
    assert (counts.wins, counts.losses, counts.ties, counts.invalid) == (3, 2, 2, 1)
    assert counts.rate == pytest.approx(4 / 7)
    assert "judge said: Both are fine" in judgements[5].note
    # Order was randomised (both orders occur), deterministically in the seed.
    swaps = judge.swap_order(len(CASES))
    assert any(swaps) and not all(swaps)
    assert swaps == OpenAIJudge(stub_server.url, "m", seed=3).swap_order(len(CASES))
    assert swaps != OpenAIJudge(stub_server.url, "m", seed=4).swap_order(len(CASES))
    shown_first = {}
    for request in stub_server.requests:
        text = request["body"]["messages"][-1]["content"]
        shown_first[re.search(r"question (\d+)", text).group(1)] = re.search(r"<answer_A>\n(.*?)\n", text).group(1)
    for i, swapped in enumerate(swaps):
        assert shown_first[str(i)] == (answers_b[i] if swapped else answers_a[i])
    assert {r["auth"] for r in stub_server.requests} == {"Bearer sk-test-123"}
    assert {r["body"]["model"] for r in stub_server.requests} == {"judge-9"}


def test_openai_judge_model_from_models_list_and_no_key(stub_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judge = make_judge(f"openai:{stub_server.url}")
    assert judge.model == "judge-1" and judge.name.endswith("#judge-1")
    assert judge.judge([[{"role": "user", "content": "q"}]], ["GOOD"], ["bad"])[0].winner == "A"
    assert stub_server.requests[-1]["auth"] is None
    # A bare host gets /v1; a full chat/completions URL is used as given.
    assert OpenAIJudge(stub_server.url.removesuffix("/v1"), "m").client.endpoint == stub_server.url + "/chat/completions"
    assert OpenAIJudge(stub_server.url + "/chat/completions", "m").client.base == stub_server.url


def test_openai_judge_wrong_path_is_a_clear_error(stub_server):
    judge = OpenAIJudge(stub_server.url.removesuffix("/v1") + "/api", "m", retries=0)
    with pytest.raises(DpokitError, match="HTTP 404"):
        judge.judge([[{"role": "user", "content": "q"}]], ["a"], ["b"])


def test_unreachable_judge_endpoint(tmp_path, capsys):
    port = _closed_port()
    with pytest.raises(DpokitError, match=f"cannot reach the judge endpoint http://127.0.0.1:{port}"):
        make_judge(f"openai:http://127.0.0.1:{port}/v1#m")
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    # The judge is checked before any model loads: these model names need not exist.
    code = main(["compare", "no-model-a", "no-model-b", "--prompts", str(prompts),
                 "--judge", f"openai:http://127.0.0.1:{port}/v1#m"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach the judge endpoint" in err and "Traceback" not in err


def test_cli_errors_empty_prompts_and_bad_judge(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["compare", "a", "b", "--prompts", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "empty.jsonl" in err and "empty" in err and "Traceback" not in err
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    assert main(["compare", "a", "b", "--prompts", str(prompts), "--judge", "gpt4"]) == 2
    assert "unknown judge" in capsys.readouterr().err
    assert main(["compare", "a", "b", "--prompts", str(prompts), "--judge", f"rm:{tmp_path / 'nope'}"]) == 2
    assert "not a model dir" in capsys.readouterr().err


def test_cli_end_to_end_with_stub_judge(tmp_path, stub_server, monkeypatch, capsys):
    answers = {"base": lambda q: "meh", "tuned": lambda q: "GOOD <i>answer</i>" if "win" in q else "meh too"}
    monkeypatch.setattr(compare_mod, "generate_with", fake_generate(answers))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p}) for p in ["win 1", "draw", "win 2"]) + "\n")
    out = tmp_path / "report.html"
    code = main(["compare", "base", "tuned", "--prompts", str(prompts), "--judge", f"openai:{stub_server.url}#j",
                 "--out", str(out), "--json", "--max-new-tokens", "16", "--seed", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["summary"]["wins"] == 2 and data["summary"]["ties"] == 1 and data["summary"]["losses"] == 0
    assert data["summary"]["ci95"] == pytest.approx(list(wilson_interval(2.5, 3)))
    assert data["sampling"]["max_new_tokens"] == 16 and data["sampling"]["seed"] == 1
    page = out.read_text()
    assert "GOOD &lt;i&gt;answer&lt;/i&gt;" in page and "83.3%" in page


def test_judge_failure_after_generation_keeps_the_answers(tmp_path, stub_server, monkeypatch, capsys):
    monkeypatch.setattr(compare_mod, "generate_with", fake_generate({"a": lambda q: "one", "b": lambda q: "two"}))
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    out = tmp_path / "report.html"
    wrong_path = stub_server.url.removesuffix("/v1") + "/api#m"  # reachable, but every request is a 404
    code = main(["compare", "a", "b", "--prompts", str(prompts), "--judge", f"openai:{wrong_path}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"judging failed (the answers are in {out})" in err and "HTTP 404" in err
    page = out.read_text()
    assert "Judging failed" in page and "<pre>one</pre>" in page and "<pre>two</pre>" in page


# ----------------------------------------------------------------------------- reward model judge


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    out = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def test_reward_model_judge_scores_and_verdicts(reward_model_dir):
    judge = make_judge(f"rm:{reward_model_dir}")
    assert isinstance(judge, RewardModelJudge)
    judge.batch_size = 4
    prompts = [[{"role": "user", "content": q}] for q in ("Hi", "What is 2+2?", "Name a fruit", "Why?", "Ok")]
    answers_a = ["Hello!", "4", "An apple, which is red and sweet.", "Because.", "fine"]
    answers_b = ["Hey there, how can I help you today?", "Four.", "Banana", "I do not know why.", "fine!"]
    judgements = judge.judge(prompts, answers_a, answers_b)
    # Batched (padded) scores equal one-at-a-time scores.
    alone = [judge.score([p], [a])[0] for p, a in zip(prompts, answers_a)]
    assert [j.score_a for j in judgements] == pytest.approx(alone, abs=1e-4)
    for j in judgements:
        assert j.winner == ("A" if j.score_a > j.score_b else "B")
    assert len({j.winner for j in judgements}) == 2  # the random head does not prefer one side always


def test_causal_lm_is_not_a_reward_model(tiny_model_dir):
    judge = make_judge(f"rm:{tiny_model_dir}")
    with pytest.raises(DpokitError, match="not a reward model"):
        judge.judge([[{"role": "user", "content": "q"}]], ["a"], ["b"])


def test_parse_verdict():
    assert parse_verdict("I think [[A]] ... no, final: [[B]]") == "B"
    assert parse_verdict(" tie. ") == "tie"
    assert parse_verdict('"A"') == "A"
    assert parse_verdict("[[ Tie ]]") == "tie"
    assert parse_verdict("A is better") is None
    assert parse_verdict("") is None


# ----------------------------------------------------------------------------- DPO implicit-reward judge


def _full_logits_logp(model, prompt_ids, answer_ids) -> float:
    """Oracle: summed log-prob of the answer from the model's full-vocabulary logits."""
    import torch

    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()  # [T-1, vocab]
    token_logps = logits.log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    return token_logps[len(prompt_ids) - 1:].sum().item()


DPO_PROMPTS = [[{"role": "user", "content": "What is the capital of France?"}],
               [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}],
               [{"role": "user", "content": "Count to three"}]]
DPO_A = ["Paris.", "Hi!", "1, 2, 3"]
DPO_B = ["It is Paris, a city in France.", "Hello there", "one two three"]


def test_dpo_judge_scores_are_implicit_rewards(tiny_lora_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from dpokit.data.tokenize import tokenize_pairs
    from dpokit.data.types import PreferencePair
    from dpokit.judges.dpo_reward import DpoRewardJudge
    from dpokit.runs import load_for_inference

    judge = make_judge(f"dpo:{tiny_lora_run}")
    assert isinstance(judge, DpoRewardJudge) and judge.beta == 0.1
    judgements = judge.judge(DPO_PROMPTS, DPO_A, DPO_B)

    policy, tokenizer, info = load_for_inference(tiny_lora_run)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    raw = [PreferencePair(p, [{"role": "assistant", "content": a}], [{"role": "assistant", "content": b}])
           for p, a, b in zip(DPO_PROMPTS, DPO_A, DPO_B)]
    pairs, _ = tokenize_pairs(raw, tokenizer, info.config.data)
    assert len(pairs) == len(judgements) == 3
    for judgement, pair in zip(judgements, pairs):
        reward_a = 0.1 * (_full_logits_logp(policy, pair.prompt_ids, pair.chosen_ids)
                          - _full_logits_logp(base, pair.prompt_ids, pair.chosen_ids))
        reward_b = 0.1 * (_full_logits_logp(policy, pair.prompt_ids, pair.rejected_ids)
                          - _full_logits_logp(base, pair.prompt_ids, pair.rejected_ids))
        assert judgement.score_a == pytest.approx(reward_a, abs=1e-4)
        assert judgement.score_b == pytest.approx(reward_b, abs=1e-4)
        assert abs(reward_a) > 1e-3  # the adapter really moves the policy away from the reference
        assert judgement.winner == ("A" if reward_a > reward_b else "B")


def test_dpo_judge_with_a_separate_reference_model(tiny_lora_run, tiny_model_dir, tmp_path):
    """run.json naming a reference model dir (here: the base itself) gives the same rewards."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_lora_run, run)
    meta = json.loads((run / "run.json").read_text())
    meta["reference"] = {"model": tiny_model_dir}
    (run / "run.json").write_text(json.dumps(meta))
    separate = make_judge(f"dpo:{run}").judge(DPO_PROMPTS[:2], DPO_A[:2], DPO_B[:2])
    adapter_off = make_judge(f"dpo:{tiny_lora_run}").judge(DPO_PROMPTS[:2], DPO_A[:2], DPO_B[:2])
    for s, a in zip(separate, adapter_off):
        assert s.score_a == pytest.approx(a.score_a, abs=1e-4) and s.score_b == pytest.approx(a.score_b, abs=1e-4)

    meta["stage"] = "sft"
    (run / "run.json").write_text(json.dumps(meta))
    with pytest.raises(DpokitError, match="has no implicit reward"):
        make_judge(f"dpo:{run}")
    with pytest.raises(DpokitError, match="not a dpokit run dir"):
        make_judge(f"dpo:{tiny_model_dir}")


def test_cli_real_models_with_dpo_judge(tiny_model_dir, tiny_lora_run, tmp_path, capsys):
    """Tiny base vs the tiny LoRA run, really generated, judged by the run's implicit reward."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("What is 2+2?\nName a colour.\nSay hello.\n")
    out = tmp_path / "report.html"
    args = ["compare", tiny_model_dir, str(tiny_lora_run), "--prompts", str(prompts),
            "--judge", f"dpo:{tiny_lora_run}", "--max-new-tokens", "4", "--out", str(out), "--json"]
    # B's own implicit reward would grade B: refused, before anything is generated.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is model B itself" in err and "--allow-self-judge" in err and not out.exists()
    code = main(args + ["--allow-self-judge"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert "model B itself" in data["judge_warning"]
    assert "Not an independent judge" in out.read_text()
    summary = data["summary"]
    assert summary["wins"] + summary["losses"] + summary["ties"] + summary["invalid"] == 3
    assert data["sampling"]["do_sample"] is False and data["sampling"]["max_new_tokens"] == 4
    for row in data["rows"]:
        assert isinstance(row["answer_a"], str) and isinstance(row["answer_b"], str)
        if row["answer_a"] != row["answer_b"]:
            expected = "A" if row["score_a"] > row["score_b"] else "B" if row["score_b"] > row["score_a"] else "tie"
            assert row["winner"] == expected
    assert out.read_text().count('class="item"') == 3


def test_judge_conflicts_are_found_by_what_the_refs_point_at(tiny_model_dir, tiny_lora_run, tmp_path):
    import shutil

    from dpokit.comparison import judge_conflict
    from dpokit.rundir import write_run_json

    assert "model B itself" in judge_conflict(f"dpo:{tiny_lora_run}", tiny_model_dir, str(tiny_lora_run / "final"))
    # The run's reference (its base, the adapter switched off) is model A.
    other = tmp_path / "other-run"
    shutil.copytree(tiny_lora_run, other)
    assert "against model A (its reference)" in judge_conflict(f"dpo:{other}", tiny_model_dir, str(tiny_lora_run))
    # A run on another base, compared with neither: independent.
    base_copy = tmp_path / "another-base"
    shutil.copytree(tiny_model_dir, base_copy)
    write_run_json(other, stage="dpo", base_model=str(base_copy), adapter=True, reference="precompute")
    assert judge_conflict(f"dpo:{other}", tiny_model_dir, str(tiny_lora_run)) is None
    assert judge_conflict("rm:/some/reward-model", tiny_model_dir, str(tiny_lora_run)) is None

