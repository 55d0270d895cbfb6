"""``dpokit eval``'s result as text (tables) and as JSON."""

from __future__ import annotations

import math
from typing import Any, Optional


def to_json(result: dict[str, Any]) -> str:
    """The result as JSON text; non-finite floats (which JSON cannot hold) become null."""
    import json

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(result), indent=2, ensure_ascii=False, allow_nan=False)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mean_ci(mean: Optional[float], ci: Optional[list[float]]) -> str:
    if mean is None:
        return "-"
    if ci is None:
        return _num(mean)
    return f"{_num(mean)}  [{_num(ci[0])}, {_num(ci[1])}]"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report: a (metric, value) table, then one table per category field."""
    no_ref = result.get("reward_accuracy") is None
    rows = [
        ["metric", "value"],
        ["pairs", _num(result["pairs"])],
        ["reward accuracy", _num(result["reward_accuracy"])],
        ["reward margin (mean, 95% CI)", _mean_ci(result["margin_mean"], result["margin_ci95"])],
        ["rewards chosen / rejected (mean)",
         "-" if no_ref else f"{_num(result['rewards_chosen_mean'])} / {_num(result['rewards_rejected_mean'])}"],
        ["log-prob accuracy (summed)", _num(result["logprob_accuracy"])],
        ["log-prob accuracy (per token)", _num(result["logprob_accuracy_per_token"])],
        ["log-prob margin (mean, 95% CI)", _mean_ci(result["logprob_margin_mean"], result["logprob_margin_ci95"])],
        ["log-probs chosen / rejected (mean)",
         f"{_num(result['logps_chosen_mean'])} / {_num(result['logps_rejected_mean'])}"],
    ]
    lines = []
    if result.get("model"):
        lines.append(f"model:     {result['model']}")
    if "reference" in result:
        lines.append(f"reference: {result['reference'] or 'none (reward metrics need one: pass --ref MODEL)'}")
    if "beta" in result:
        lines.append(f"beta:      {result['beta']:g}")
    data, tokens = result.get("data"), result.get("tokenization")
    if data:
        dropped = sum(data.get("dropped", {}).values())
        lines.append(f"data:      {', '.join(data['sources'])} ({data['format']}; {data['records']} records, "
                     f"{data['pairs_loaded']} pairs loaded" + (f", {dropped} dropped" if dropped else "") + ")")
    if tokens and tokens.get("pairs_dropped"):
        lines.append(f"           {tokens['pairs_dropped']} pairs dropped in tokenisation (too long for max_length)")
    if lines:
        lines.append("")
    lines.append(_table(rows))
    for name, groups in (result.get("by_category") or {}).items():
        header = [name, "pairs", "reward acc", "margin (mean, 95% CI)", "log-prob acc", "per-token acc"]
        body = [
            [label, str(m["pairs"]), _num(m["reward_accuracy"]), _mean_ci(m["margin_mean"], m["margin_ci95"]),
             _num(m["logprob_accuracy"]), _num(m["logprob_accuracy_per_token"])]
            for label, m in groups.items()
        ]
        lines += ["", f"by {name}:", _table([header] + body)]
    lines += [
        "",
        "ties count as not correct; 95% CI: Student t interval over pairs (mean ± t·s/√n)",
    ]
    return "\n".join(lines)
