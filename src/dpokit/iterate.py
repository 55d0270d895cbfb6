"""`dpokit iterate`: iterative (online) DPO. Each round the policy writes candidates, a judge scores
them, the scores become pairs, and DPO trains the next policy on them (Xu et al. 2023,
arXiv 2312.16682; Yuan et al. 2024, arXiv 2401.10020; Guo et al. 2024, arXiv 2402.04792).

The loop's directory, ``output.output_dir``::

    OUTPUT_DIR/config.yaml              the loop's resolved config (a rerun names what it changes)
    OUTPUT_DIR/round-0/eval.json        the starting model, measured on the held-out prompts
    OUTPUT_DIR/round-k/candidates.jsonl {"prompt", "source", "candidates": [...], "model", "round", "sampling"}
    OUTPUT_DIR/round-k/labels/          (judge human) the label store dpokit serve's page writes to
    OUTPUT_DIR/round-k/judged.jsonl     each line as in candidates.jsonl plus "scores" (or the people's decision)
    OUTPUT_DIR/round-k/offline_pairs.jsonl  (iterate.mix > 0) the offline pairs sampled into this round
    OUTPUT_DIR/round-k/pairs.jsonl      the round's pairs in the canonical preference format (dpokit train reads it)
    OUTPUT_DIR/round-k/run/             the round's DPO run dir (dpokit.rundir's layout)
    OUTPUT_DIR/round-k/eval.json        round k's policy measured: greedy answers, scores, win rate vs round 0
    OUTPUT_DIR/summary.json, summary.png

Round k (1..rounds) samples from round k-1's policy (round 0's is ``model.name_or_path``)
and trains starting from it: its run's ``model.name_or_path`` is round k-1's run dir. With
``reference_round: previous`` the reference is that start model (``dpo.reference``
precompute or adapter), i.e. exactly round k-1's policy; with ``initial`` it is the starting
model (``dpo.reference: {model: ...}``). A LoRA round trains a fresh adapter on round k-1's
model with round k-1's adapter *merged* into it (:mod:`dpokit.start_model`: merged into a
cache dir, the adapter carried in ``run/base/``), so adapters never stack: each round's
``final/`` is one adapter on one merged model. Each ``run/base/`` holds the whole chain of
earlier adapters (``base/base/...``), so any round's run dir can be moved or served alone.

Resuming: every stage's output is written atomically (:mod:`dpokit.outputs`) and only when
the stage is complete, so a rerun of the same command skips what exists and redoes no
finished step. A killed training run resumes from its latest checkpoint
(``training.save_steps``), or starts that round's training again when it had none. Sampling
is seeded (``sampling_seed + k``) and training is seeded, so a resumed loop ends where an
uninterrupted one does.

Names, readers and the checks made before anything slow are :mod:`dpokit.iterate_setup`'s;
asking the judge and making pairs :mod:`dpokit.iterate_judging`'s; the summary
:mod:`dpokit.iterate_report`'s.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from dpokit.errors import DpokitError, with_flags
from dpokit.iterate_judging import WaitingForLabels
from dpokit.iterate_setup import (CANDIDATES_FILE, EVAL_FILE, JUDGED_FILE, LABELS_DIR, OFFLINE_FILE, PAIRS_FILE,
                                  RUN_DIR, SUMMARY_JSON, SUMMARY_PNG, Layout, check_iterate_config, count_lines,
                                  read_rows, record_loop_config, say)
from dpokit.outputs import make_dirs, write_json, write_jsonl

if TYPE_CHECKING:
    from dpokit.config import Config

WAITING_EXIT_CODE = 3
"""``dpokit iterate``'s exit status when it stopped for people to label (not an error)."""
JUDGE_FLAGS = {"--judge": "iterate.judge"}
"""Judges name their setting as ``dpokit compare``'s flag; here it is a config key."""
LEFT_OUT = {"tie": "tied", "below_min_margin": "closer than min_margin", "identical": "identical answers",
            "not_a_pair": "tie or skip by people", "undecided": "not decided by people",
            "not_shown": "not shown to people (empty or identical candidates)"}
"""How the pairing step names what it left out (:func:`dpokit.iterate_judging.make_pairs`' reasons)."""


@dataclass
class IterateResult:
    output_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    """``summary.json``'s rounds, finished rounds only."""
    waiting: Optional[str] = None
    """Set when the loop stopped for people to label (what to do next)."""


# ---------------------------------------------------------------- small helpers


@contextlib.contextmanager
def _stage(layout: Layout, k: int, step: str) -> Iterator[None]:
    """Name the round and step in a user error, and say that finished rounds are kept."""
    try:
        yield
    except DpokitError as err:
        err = with_flags(err, JUDGE_FLAGS)
        kept = f"finished rounds are kept in {layout.root}; rerunning the same command continues from round {k}, {step}"
        hint = f"{err.hint}\n  ({kept})" if err.hint else kept
        raise DpokitError(f"round {k}, {step}: {err.message}", hint) from None


class PolicyCache:
    """The one policy in memory (round k-1's eval and round k's sampling share it)."""

    def __init__(self, dtype: Optional[str]):
        self.dtype, self.ref, self.loaded = dtype, None, None

    def get(self, ref: str):
        if self.ref != ref:
            from dpokit.runs import load_for_inference

            self.release()
            model, tokenizer, _info = load_for_inference(ref, dtype=self.dtype)
            self.ref, self.loaded = ref, (model, tokenizer)
        return self.loaded

    def release(self) -> None:
        self.ref = self.loaded = None
        gc.collect()


# ---------------------------------------------------------------- the loop


class Loop:
    """One ``dpokit iterate`` invocation: the stages of every round, each skipped when its output exists."""

    def __init__(self, config: "Config", *, show_progress: bool = True):
        from dpokit.prompts import read_prompt_records
        from dpokit.iterate_judging import HUMAN, judge_kind
        from dpokit.judges import make_judge

        self.settings = check_iterate_config(config)
        self.config, self.show_progress = config, show_progress
        self.layout = Layout(Path(config.output.output_dir).expanduser().resolve())
        self.initial = config.model.name_or_path
        # Bad prompts or a judge that cannot work fail here, before any model is loaded.
        self.train_prompts = read_prompt_records(self.settings.prompts)
        self.eval_prompts = read_prompt_records(self.settings.eval_prompts)
        try:
            self.judge = make_judge(self.settings.judge, seed=self.settings.sampling_seed)
            self.kind = judge_kind(self.judge)
            if self.settings.eval_judge:
                self.eval_judge = make_judge(self.settings.eval_judge, seed=self.settings.sampling_seed)
            else:
                self.eval_judge = None if self.kind == HUMAN else self.judge
        except DpokitError as err:
            raise with_flags(err, JUDGE_FLAGS) from None
        if self.eval_judge is None:
            say("note: the held-out prompts get answers but no scores: people judge this loop and the measure "
                "needs an unattended judge (set iterate.eval_judge, e.g. python:FILE.py:FUNCTION or rm:PATH)")
        self.policies = PolicyCache(config.model.dtype if config.model.dtype != "auto" else None)

    def renderer(self, tokenizer):
        from dpokit.render import Renderer

        return Renderer(tokenizer, self.config.data)  # the rounds train with these data settings

    def policy_ref(self, k: int) -> str:
        """Round k's policy: the starting model for round 0, else round k's run dir."""
        return self.initial if k == 0 else str(self.layout.run(k))

    def run(self) -> IterateResult:
        make_dirs(self.layout.root)
        record_loop_config(self.layout, self.config)
        result = IterateResult(self.layout.root)
        try:
            with _stage(self.layout, 0, "measuring"):
                self.measure(0)
            for k in range(1, self.settings.rounds + 1):
                with _stage(self.layout, k, "generating candidates"):
                    candidates = self.generate(k)
                with _stage(self.layout, k, "judging"):
                    judged = self.judge_round(k, candidates)
                with _stage(self.layout, k, "pairing"):
                    self.pair(k, judged)
                with _stage(self.layout, k, "training"):
                    self.train(k)
                with _stage(self.layout, k, "measuring"):
                    self.measure(k)
        except WaitingForLabels as waiting:
            result.waiting = str(waiting)
        except BaseException:
            self.policies.release()
            self.write_summary(quiet=True)  # the finished rounds, as far as they go
            raise
        self.policies.release()
        result.rows = self.write_summary()
        return result

    # ---- stage: candidates

    def generate(self, k: int) -> list[dict[str, Any]]:
        from dpokit.generate import SamplingSettings, generate_candidates

        path = self.layout.file(k, CANDIDATES_FILE)
        if path.is_file():
            return read_rows(path)
        s = self.settings
        previous = self.policy_ref(k - 1)
        sampling = SamplingSettings(max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p)
        seed = s.sampling_seed + k
        say(f"round {k}: sampling {s.candidates} candidates for each of {len(self.train_prompts)} prompts "
            f"from {previous}")
        model, tokenizer = self.policies.get(previous)
        answers = generate_candidates(model, self.renderer(tokenizer), [r.messages for r in self.train_prompts],
                                      sampling, n=s.candidates, seed=seed, show_progress=self.show_progress)
        settings = {**asdict(sampling), "seed": seed, "n": s.candidates}
        rows = [{"prompt": r.messages, "source": r.source, "candidates": a, "model": previous, "round": k,
                 "sampling": settings} for r, a in zip(self.train_prompts, answers)]
        write_jsonl(path, rows)
        return rows

    # ---- stage: judging

    def judge_round(self, k: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from dpokit.iterate_judging import HUMAN, human_decisions, score_candidates

        path = self.layout.file(k, JUDGED_FILE)
        if path.is_file():
            return read_rows(path)
        if self.kind == HUMAN:
            judged = human_decisions(self.judge, self.layout.file(k, LABELS_DIR), rows, k, self.policy_ref(k - 1),
                                     min_decided=self.settings.min_decided)
            undecided = sum(1 for r in judged if "item_id" in r and r["decision"] is None)
            if undecided:
                shown = sum(1 for r in judged if "item_id" in r)
                say(f"round {k}: going on with {shown - undecided} of {shown} prompts decided by people "
                    f"(iterate.min_decided={self.settings.min_decided:g}); the {undecided} undecided are left out")
        else:
            say(f"round {k}: judging {sum(len(r['candidates']) for r in rows)} candidates with {self.judge.name}")
            scores, invalid = score_candidates(self.judge, [r["prompt"] for r in rows], [r["candidates"] for r in rows])
            if invalid:
                say(f"round {k}: warning: {invalid} comparisons got no usable verdict from {self.judge.name}")
            judged = [{**{key: row[key] for key in ("prompt", "source", "candidates")}, "scores": s,
                       "judge": self.judge.name} for row, s in zip(rows, scores)]
        write_jsonl(path, judged)
        return judged

    # ---- stage: pairs

    def pair(self, k: int, judged: list[dict[str, Any]]) -> None:
        from dpokit.data.write import write_pairs_jsonl
        from dpokit.iterate_judging import HUMAN, make_pairs

        path = self.layout.file(k, PAIRS_FILE)
        if path.is_file():
            return
        s = self.settings
        pairs, left_out = make_pairs(judged, s.pairing, s.min_margin, k)
        unjudged = sum(1 for r in judged if "scores" in r for v in r["scores"] if v is None)
        detail = ", ".join(f"{n} {LEFT_OUT.get(reason, reason)}" for reason, n in sorted(left_out.items()) if n)
        detail += f"{', ' if detail else ''}{unjudged} empty candidates" if unjudged else ""
        if not pairs and self.kind == HUMAN:
            raise DpokitError(
                f"no preference pair: people decided no prompt left or right ({detail or 'nothing to compare'})",
                f"delete {self.layout.file(k, JUDGED_FILE)}, decide some prompts left or right on the label page "
                "(or raise iterate.min_decided), and run the same dpokit iterate command again")
        if not pairs:
            raise DpokitError(
                f"no preference pair: every pair of candidates tied ({detail or 'nothing to compare'}; "
                f"pairing {s.pairing}, min_margin {s.min_margin:g})",
                "sample more varied answers (raise iterate.temperature or iterate.candidates), "
                "lower iterate.min_margin, "
                "or use a judge that tells these answers apart")
        if s.mix > 0:
            self.write_offline_pairs(k)
        write_pairs_jsonl(pairs, path)
        say(f"round {k}: {len(pairs)} pairs" + (f" (left out: {detail})" if detail else ""))

    def write_offline_pairs(self, k: int) -> None:
        """A fresh seeded sample of ``mix`` of the offline pairs (``data.train_files``), in canonical form."""
        from dpokit.data.load import load_preference_data
        from dpokit.data.write import write_pairs_jsonl

        data = self.config.data
        loaded = load_preference_data(data.train_files, format=data.format, columns=data.columns,
                                      registry=data.registry, skip_bad_records=data.skip_bad_records,
                                      pair_strategy=data.pair_strategy, max_samples=data.max_samples).pairs
        count = round(self.settings.mix * len(loaded))
        sample = random.Random(f"{self.settings.sampling_seed}:{k}").sample(loaded, count) if count else []
        write_pairs_jsonl(sample, self.layout.file(k, OFFLINE_FILE))
        say(f"round {k}: mixing in {count} of {len(loaded)} offline pairs")

    # ---- stage: training

    def round_config(self, k: int) -> "Config":
        """Round k's training config: the loop's, starting from round k-1's policy, on round k's pairs."""
        from dpokit.config import ReferenceModel
        from dpokit.rundir import latest_checkpoint

        cfg = self.config.model_copy(deep=True)
        cfg.iterate = None
        cfg.model.name_or_path = self.policy_ref(k - 1)
        offline = self.layout.file(k, OFFLINE_FILE)
        cfg.data.train_files = [str(self.layout.file(k, PAIRS_FILE))] + ([str(offline)] if offline.is_file() else [])
        # Both files are canonical pairs; held-out measurement is the loop's own (eval_prompts).
        cfg.data.format, cfg.data.columns, cfg.data.registry = "auto", {}, None
        cfg.data.eval_files, cfg.data.eval_fraction, cfg.data.max_samples = [], 0.0, None
        if self.settings.reference_round == "initial" and k > 1 and not cfg.dpo.reference_free:
            cfg.dpo.reference = ReferenceModel(model=self.initial)
        run_dir = self.layout.run(k)
        cfg.output.output_dir = str(run_dir)
        if latest_checkpoint(run_dir) is not None:
            cfg.training.resume_from_checkpoint = "latest"
        else:
            cfg.training.resume_from_checkpoint = None
            cfg.output.overwrite_output_dir = run_dir.is_dir() and any(run_dir.iterdir())
        return cfg

    def train(self, k: int) -> None:
        from dpokit.recipe import train
        from dpokit.rundir import FINAL_DIR

        if (self.layout.run(k) / FINAL_DIR).is_dir():
            return
        cfg = self.round_config(k)
        how = ("resuming from its latest checkpoint" if cfg.training.resume_from_checkpoint
               else "again from the start (no checkpoint was saved)" if cfg.output.overwrite_output_dir else "")
        say(f"round {k}: training on {self.layout.file(k, PAIRS_FILE)} from {cfg.model.name_or_path}"
            + (f", {how}" if how else ""))
        self.policies.release()
        train(cfg, show_progress=self.show_progress)

    # ---- stage: measuring

    def measure(self, k: int) -> dict[str, Any]:
        from dpokit.generate import SamplingSettings, generate_candidates
        from dpokit.iterate_judging import measure as measure_answers

        path = self.layout.file(k, EVAL_FILE)
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        baseline = None
        if k > 0:
            baseline = self.measure(0)
            baseline["answers"] = [row["answer"] for row in baseline["rows"]]
            if [row["prompt"] for row in baseline["rows"]] != [r.messages for r in self.eval_prompts]:
                raise DpokitError(f"iterate.eval_prompts: {self.settings.eval_prompts} is not the file round 0 was "
                                  f"measured on ({self.layout.file(0, EVAL_FILE)})",
                                  "restore it, or start a new loop in a new output.output_dir")
        ref = self.policy_ref(k)
        greedy = SamplingSettings(max_new_tokens=self.settings.max_new_tokens, do_sample=False)
        say(f"round {k}: measuring {ref} on {len(self.eval_prompts)} held-out prompts")
        model, tokenizer = self.policies.get(ref)
        prompts = [r.messages for r in self.eval_prompts]
        answers = [a[0] for a in generate_candidates(model, self.renderer(tokenizer), prompts, greedy,
                                                     show_progress=self.show_progress)]
        measured: dict[str, Any] = {"judge": None, "scores": None, "mean_score": None, "mean_score_ci95": None,
                                    "win_rate_vs_round0": None}
        if self.eval_judge is not None:
            measured = measure_answers(self.eval_judge, prompts, answers, baseline)
        scores = measured.pop("scores") or [None] * len(answers)
        data = {"round": k, "model": ref, **measured,
                "sampling": {"do_sample": False, "max_new_tokens": greedy.max_new_tokens},
                "rows": [{"prompt": r.messages, "source": r.source, "answer": a, "score": s}
                         for r, a, s in zip(self.eval_prompts, answers, scores)]}
        write_json(path, data)
        return data

    # ---- the summary

    def write_summary(self, quiet: bool = False) -> list[dict[str, Any]]:
        """summary.json and summary.png from the rounds measured so far.

        ``quiet``: never raise (an error is already on its way).
        """
        from dpokit.iterate_report import summary_row, write_plot, write_summary

        rows = []
        for k in range(0, self.settings.rounds + 1):
            path = self.layout.file(k, EVAL_FILE)
            if not path.is_file():
                break
            measured = json.loads(path.read_text(encoding="utf-8"))
            run_dir = self.initial if k == 0 else str(Path(self.config.output.output_dir) / f"round-{k}" / RUN_DIR)
            rows.append(summary_row(k, count_lines(self.layout.file(k, PAIRS_FILE)), measured, run_dir))
        try:
            write_summary(self.layout.root / SUMMARY_JSON, rows, judge=self.judge.name,
                          eval_judge=self.eval_judge.name if self.eval_judge is not None else None)
            if rows:
                write_plot(self.layout.root / SUMMARY_PNG, rows)
        except DpokitError:
            if not quiet:
                raise
        return rows


def run_iterate(config: "Config", *, show_progress: bool = True) -> IterateResult:
    """Run (or continue) the loop ``config`` describes; see the module docstring."""
    return Loop(config, show_progress=show_progress).run()
