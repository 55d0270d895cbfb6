"""A rule judge for `dpokit iterate`: concise answers that end with a full stop.

dpokit calls score(prompt_messages, answer_text) for every candidate answer; higher is better.
Check it by eye: an answer earns 1 point for being under 60 words and 1 point for ending
with a full stop, so every score is 0, 1 or 2.
"""


def score(prompt, answer):
    under_60_words = len(answer.split()) < 60
    ends_with_full_stop = answer.rstrip().endswith(".")
    return float(under_60_words) + float(ends_with_full_stop)
