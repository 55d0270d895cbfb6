"""Each loss against a value computed by hand; the batch objectives on a tiny model."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from dpokit.config import DPOConfig  # noqa: E402
from dpokit.losses import LOSSES, MEAN_LOGP_LOSSES, REFERENCE_FREE_LOSSES  # noqa: E402
from dpokit.objective import chosen_nll, dpo_batch_loss, policy_logps, sft_batch_loss  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Two pairs of log-probs: policy chosen/rejected, reference chosen/rejected.
PC, PR, RC, RR = [-3.0, -10.0], [-5.0, -4.0], [-4.0, -9.0], [-4.5, -6.0]


def _tensors():
    return tuple(torch.tensor(x, dtype=torch.float64) for x in (PC, PR, RC, RR))


def _h(i: int) -> float:
    """DPO's log-ratio margin of pair i, by hand."""
    return (PC[i] - RC[i]) - (PR[i] - RR[i])


def _logsigmoid(x: float) -> float:
    return -math.log(1 + math.exp(-x))


def _check(loss_type: str, expected_losses: list[float], expected_chosen: list[float], expected_rejected: list[float], **cfg):
    losses, chosen, rejected = LOSSES[loss_type](*_tensors(), DPOConfig(loss_type=loss_type, **cfg))
    assert losses.tolist() == pytest.approx(expected_losses, rel=1e-12)
    assert chosen.tolist() == pytest.approx(expected_chosen, rel=1e-12)
    assert rejected.tolist() == pytest.approx(expected_rejected, rel=1e-12)
    assert not chosen.requires_grad and not rejected.requires_grad


def _implicit(beta: float):
    return [beta * (PC[i] - RC[i]) for i in range(2)], [beta * (PR[i] - RR[i]) for i in range(2)]


def test_sigmoid_is_dpo():
    # h = (-3 + 4) - (-5 + 4.5) = 1.5 and (-10 + 9) - (-4 + 6) = -3
    assert (_h(0), _h(1)) == (1.5, -3.0)
    beta = 0.1
    _check("sigmoid", [-_logsigmoid(0.15), -_logsigmoid(-0.3)], *_implicit(beta), beta=beta)


def test_sigmoid_with_label_smoothing_is_conservative_dpo():
    beta, eps = 0.5, 0.1
    expected = [-(1 - eps) * _logsigmoid(beta * _h(i)) - eps * _logsigmoid(-beta * _h(i)) for i in range(2)]
    _check("sigmoid", expected, *_implicit(beta), beta=beta, label_smoothing=eps)
    # cDPO pulls a confidently-right pair's loss up: it no longer goes to 0.
    assert expected[0] > -_logsigmoid(beta * _h(0))


def test_robust_is_unbiased_under_label_noise():
    beta, eps = 0.5, 0.2
    expected = [
        ((1 - eps) * -_logsigmoid(beta * _h(i)) - eps * -_logsigmoid(-beta * _h(i))) / (1 - 2 * eps) for i in range(2)
    ]
    _check("robust", expected, *_implicit(beta), beta=beta, label_smoothing=eps)
    # With no noise it is plain DPO.
    plain, _, _ = LOSSES["robust"](*_tensors(), DPOConfig(beta=beta, label_smoothing=0.0))
    assert plain.tolist() == pytest.approx([-_logsigmoid(beta * _h(i)) for i in range(2)])


def test_ipo_is_squared_distance_to_half_inverse_beta():
    beta = 0.25  # 1 / (2 beta) = 2
    _check("ipo", [(1.5 - 2) ** 2, (-3 - 2) ** 2], *_implicit(beta), beta=beta)


def test_hinge_is_zero_beyond_the_margin():
    _check("hinge", [1 - 0.5 * 1.5, 1 + 0.5 * 3], *_implicit(0.5), beta=0.5)
    losses, _, _ = LOSSES["hinge"](*_tensors(), DPOConfig(loss_type="hinge", beta=1.0))
    assert losses.tolist() == [0.0, 4.0]  # 1 - 1.5 < 0 is clipped


def test_simpo_is_reference_free_with_a_target_margin():
    beta, gamma = 2.0, 0.5
    expected = [-_logsigmoid(beta * (PC[i] - PR[i]) - gamma) for i in range(2)]
    chosen, rejected = [beta * x for x in PC], [beta * x for x in PR]
    _check("simpo", expected, chosen, rejected, beta=beta, simpo_gamma=gamma)
    pc, pr, _, _ = _tensors()
    no_ref, _, _ = LOSSES["simpo"](pc, pr, None, None, DPOConfig(loss_type="simpo", beta=beta, simpo_gamma=gamma))
    assert no_ref.tolist() == pytest.approx(expected)


def test_orpo_is_the_log_odds_ratio_term():
    beta = 0.1
    # Mean log-probs m; odds(m) = p / (1 - p) with p = exp(m).
    def log_odds(m: float) -> float:
        p = math.exp(m)
        return math.log(p / (1 - p))

    means = ([-0.5, -2.0], [-1.5, -0.01])
    expected = [-beta * _logsigmoid(log_odds(means[0][i]) - log_odds(means[1][i])) for i in range(2)]
    pc, pr = (torch.tensor(m, dtype=torch.float64) for m in means)
    losses, chosen, rejected = LOSSES["orpo"](pc, pr, None, None, DPOConfig(loss_type="orpo", beta=beta))
    assert losses.tolist() == pytest.approx(expected, rel=1e-9)
    assert chosen.tolist() == pytest.approx([beta * m for m in means[0]])
    assert rejected.tolist() == pytest.approx([beta * m for m in means[1]])


def test_every_configurable_loss_is_registered():
    from typing import get_args

    from dpokit.config import DPOConfig as Cfg

    names = set(get_args(Cfg.model_fields["loss_type"].annotation))
    assert names == set(LOSSES)
    assert REFERENCE_FREE_LOSSES == {name for name in names if Cfg(loss_type=name).reference_free}
    assert MEAN_LOGP_LOSSES <= set(LOSSES)


def test_losses_are_differentiable_in_the_policy():
    pc, pr, rc, rr = (t.clone().requires_grad_(i < 2) for i, t in enumerate(_tensors()))
    for name, fn in LOSSES.items():
        loss = fn(pc, pr, rc, rr, DPOConfig(loss_type=name, beta=0.1)).__getitem__(0).sum()
        gc, gr = torch.autograd.grad(loss, (pc, pr))
        assert (gc <= 0).all() and (gr >= 0).all(), name  # raising chosen / lowering rejected never hurts
        assert gc.abs().sum() + gr.abs().sum() > 0, name


# ----------------------------------------------------------------------------- objectives


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def batch():
    from dpokit.data.collate import collate_preference
    from dpokit.data.tokenize import TokenizedPair

    gen = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(3, 40000, (n,), generator=gen).tolist()  # noqa: E731
    pairs = [TokenizedPair(ids(6), ids(4), ids(7)), TokenizedPair(ids(3), ids(9), ids(2)), TokenizedPair(ids(5), ids(1), ids(5))]
    return collate_preference(pairs, pad_token_id=2)


def test_policy_logps_splits_chosen_and_rejected(tiny, batch):
    with torch.no_grad():
        out = policy_logps(tiny, batch, chunk_size=4)
    assert out.chosen_counts.tolist() == [4, 9, 1] and out.rejected_counts.tolist() == [7, 2, 5]
    assert out.chosen.shape == out.rejected.shape == (3,)
    assert (out.chosen < 0).all() and (out.rejected < 0).all()


@pytest.mark.parametrize("loss_type", sorted(LOSSES))
def test_dpo_batch_loss_applies_the_configured_loss(tiny, batch, loss_type):
    with torch.no_grad():
        policy = policy_logps(tiny, batch)
    ref_chosen, ref_rejected = policy.chosen - 0.7, policy.rejected + 0.4  # a reference the policy beats
    cfg = DPOConfig(loss_type=loss_type, beta=0.2)
    loss, metrics = dpo_batch_loss(tiny, batch, ref_chosen, ref_rejected, cfg, chunk_size=5)
    assert loss.requires_grad
    if loss_type in MEAN_LOGP_LOSSES:  # per-token means, as TRL
        pc, pr = policy.chosen / policy.chosen_counts, policy.rejected / policy.rejected_counts
        rc, rr = ref_chosen / policy.chosen_counts, ref_rejected / policy.rejected_counts
    else:
        pc, pr, rc, rr = policy.chosen, policy.rejected, ref_chosen, ref_rejected
    expected, chosen_rewards, rejected_rewards = LOSSES[loss_type](pc, pr, rc, rr, cfg)
    expected = expected.mean()
    if loss_type == "orpo":  # ORPO's objective includes the chosen NLL
        expected = expected + chosen_nll(policy)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    if loss_type in REFERENCE_FREE_LOSSES:
        assert metrics["rewards/chosen"].item() == pytest.approx(chosen_rewards.mean().item(), rel=1e-5)
    else:  # DPO's implicit reward of the summed log-probs, whatever the loss normalises
        assert metrics["rewards/chosen"].item() == pytest.approx(0.2 * 0.7, rel=1e-4)
        assert metrics["rewards/rejected"].item() == pytest.approx(-0.2 * 0.4, rel=1e-4)
        assert metrics["rewards/margins"].item() == pytest.approx(0.2 * 1.1, rel=1e-4)
        assert metrics["rewards/accuracies"].item() == 1.0
    assert metrics["logps/chosen"].item() == pytest.approx(policy.chosen.mean().item(), rel=1e-5)
    assert metrics["logps/rejected"].item() == pytest.approx(policy.rejected.mean().item(), rel=1e-5)
    assert all(not v.requires_grad and v.dim() == 0 for v in metrics.values())


def test_rpo_alpha_adds_the_chosen_nll_as_trl_defines_it(tiny, batch):
    with torch.no_grad():
        policy = policy_logps(tiny, batch)
    plain, _ = dpo_batch_loss(tiny, batch, policy.chosen, policy.rejected, DPOConfig(beta=0.1))
    with_nll, metrics = dpo_batch_loss(tiny, batch, policy.chosen, policy.rejected, DPOConfig(beta=0.1, rpo_alpha=0.5))
    # Total over all chosen tokens / their number (4 + 9 + 1), not a mean of per-pair means.
    nll = -policy.chosen.sum().item() / 14
    assert metrics["nll_loss"].item() == pytest.approx(nll, rel=1e-5)
    assert with_nll.item() == pytest.approx(plain.item() + 0.5 * nll, rel=1e-5)
    assert plain.item() == pytest.approx(math.log(2), abs=1e-6)  # policy == reference


def test_reference_based_losses_need_reference_logps(tiny, batch):
    with pytest.raises(ValueError, match="reference"):
        dpo_batch_loss(tiny, batch, None, None, DPOConfig(loss_type="sigmoid"))
    loss, _ = dpo_batch_loss(tiny, batch, None, None, DPOConfig(loss_type="simpo"))
    assert torch.isfinite(loss)


def test_sft_loss_equals_the_models_own_token_mean_cross_entropy(tiny, batch):
    from dpokit.data.collate import collate_sft
    from dpokit.data.tokenize import TokenizedPair

    pairs = [TokenizedPair([5, 6, 7], [8, 9], [1]), TokenizedPair([10, 11], [12, 13, 14, 15], [1])]
    sft = collate_sft(pairs, pad_token_id=2)
    loss, metrics = sft_batch_loss(tiny, sft, chunk_size=2)
    labels = sft["input_ids"].masked_fill(~sft["loss_mask"], -100)
    with torch.no_grad():
        expected = tiny(input_ids=sft["input_ids"], attention_mask=sft["attention_mask"], labels=labels).loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["num_tokens"].item() == 6 and loss.requires_grad
