"""``dpo:RUN_DIR``: a DPO run's implicit reward of each answer; the higher reward wins."""

from __future__ import annotations

import math

from dpokit.errors import DpokitError
from dpokit.judges import ScoreJudge


class DpoRewardJudge(ScoreJudge):
    """Scores each answer with a DPO run's implicit reward ``beta * (log pi(y|x) - log pi_ref(y|x))``.

    ``pi`` is the run's final policy and ``log pi(y|x)`` the summed log-prob of the answer's
    tokens after the prompt, tokenised as in training (the run's chat template and
    ``data`` settings, truncation included). The reference follows the run: a separate
    model when one was configured, else the base model (the LoRA adapter switched off, or
    the base model loaded for a full fine-tune). For a reference-free run (SimPO, ORPO)
    the reward is ``beta * mean log-prob per token``, as that run logged it. An answer
    with no scoreable token gets NaN (no verdict).
    """

    def __init__(self, run_dir: str, batch_size: int = 4):
        from dpokit.runs import open_model_or_run

        self.run_dir = run_dir
        self.name = f"dpo:{run_dir}"
        self.batch_size = batch_size
        info = open_model_or_run(run_dir)
        if info.path is None or info.config is None:
            raise DpokitError(f"--judge {self.name}: not a dpokit run dir (no run.json/config.yaml)",
                              "pass the output_dir of a `dpokit train` DPO run")
        if info.stage != "dpo":
            raise DpokitError(f"--judge {self.name}: a '{info.stage}' run has no implicit reward",
                              "pass a DPO run (stage: dpo)")
        self.info = info
        self.config = info.config
        self.beta = self.config.dpo.beta

    def score_both(self, prompts, answers_a, answers_b) -> tuple[list[float], list[float]]:
        import gc

        from dpokit.data.tokenize import tokenize_pairs
        from dpokit.data.types import PreferencePair
        from dpokit.runs import load_for_inference, run_reference
        from dpokit.scoring import score_examples

        model, tokenizer, _ = load_for_inference(self.run_dir)
        raw = [
            PreferencePair(list(p), [{"role": "assistant", "content": a}], [{"role": "assistant", "content": b}],
                           source=str(i))
            for i, (p, a, b) in enumerate(zip(prompts, answers_a, answers_b))
        ]
        pairs, _ = tokenize_pairs(raw, tokenizer, self.config.data)  # A as "chosen", B as "rejected"
        scores_a = [math.nan] * len(raw)
        scores_b = [math.nan] * len(raw)
        if not pairs:
            return scores_a, scores_b
        options = dict(batch_size=self.batch_size, chunk_size=self.config.training.logprob_chunk_size)
        policy = score_examples(model, pairs, tokenizer.pad_token_id, **options)
        reference = run_reference(self.info)
        if reference is None:  # reference-free: beta * mean log-prob per token, as the run logged it
            policy_a = (policy.chosen / policy.chosen_tokens.clamp(min=1)).tolist()
            policy_b = (policy.rejected / policy.rejected_tokens.clamp(min=1)).tolist()
            ref_a, ref_b = [0.0] * len(pairs), [0.0] * len(pairs)
        else:
            policy_a, policy_b = policy.chosen.tolist(), policy.rejected.tolist()
            if reference == "adapter":
                ref = score_examples(model, pairs, tokenizer.pad_token_id, adapter_disabled=True, **options)
            else:
                del model
                gc.collect()
                model, _, _ = load_for_inference(reference)
                ref = score_examples(model, pairs, tokenizer.pad_token_id, **options)
            ref_a, ref_b = ref.chosen.tolist(), ref.rejected.tolist()
        del model
        gc.collect()
        for k, pair in enumerate(pairs):
            i = int(pair.source)
            scores_a[i] = self.beta * (policy_a[k] - ref_a[k])
            scores_b[i] = self.beta * (policy_b[k] - ref_b[k])
        return scores_a, scores_b
