"""A PPM model's probabilities, token by token (Cleary and Witten, 1984: the longest context
seen, escaping with exclusion down to uniform; update exclusion; escapes estimated from similar
contexts, as in PPMd); their mixture with a model's: `rnnlm.scoring.mixture`. pyppmd gives
sizes, not probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rnnlm.errors import UserError, require_count

# Secondary escape estimation: a rate starts as PPM-D's with the weight of PRIOR escapes and
# is halved when its count passes LIMIT, so it follows the text.
PRIOR, LIMIT = 8.0, 255.0


def ppm_read(
    ids: Sequence[int], vocab_size: int, order: int, full_from: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log p(ids[t] | ids[:t]) for every t (float64, one read); for every t a bucket of what the
    PPM knows before ids[t] (0: no context seen, else 3 x the longest one's order + the distinct
    tokens after it, 1-3); with `full_from`, log p of every token at every t from there."""
    require_count("ppm_mixture.order", order, minimum=0)
    if any(not 0 <= i < vocab_size for i in ids):
        raise UserError(f"token ids must be in [0, {vocab_size}): the vocabulary's size")
    text = "".join(map(chr, ids))  # contexts are slices of a str: hashable and fast
    tables: dict[str, dict[str, int]] = {}
    rates: dict[tuple, list[float]] = {}
    out = torch.empty(len(text), dtype=torch.float64)
    known = torch.zeros(len(text), dtype=torch.int64)
    full = [] if full_from is not None else None
    for t, token in enumerate(text):
        top = min(order, t)
        depth = next((k for k in range(top, -1, -1) if text[t - k : t] in tables), -1)
        if depth >= 0:
            known[t] = 3 * depth + min(len(tables[text[t - depth : t]]), 3)
        if full is not None and t >= full_from:
            full.append(distribution(text, t, top, tables, rates, vocab_size))
        p, found, escapes = probability(text, t, top, tables, rates, vocab_size)
        out[t] = math.log(p)
        for rate, escaped in escapes:  # the escape rates learn from what they just coded
            rate[0] += escaped
            rate[1] += 1
            if rate[1] > LIMIT:
                rate[0], rate[1] = rate[0] / 2, rate[1] / 2
        for k in range(max(found, 0), top + 1):  # update exclusion: the orders that coded it
            counts = tables.setdefault(text[t - k : t], {})
            counts[token] = counts.get(token, 0) + 1
    return out, known, None if full is None else torch.tensor(full, dtype=torch.float64).log()


def buckets(order: int) -> int:
    """The buckets of `ppm_read` for `order`."""
    return 3 * order + 4


def probability(text: str, t: int, top: int, tables, rates, vocab_size: int, asked=None):
    """p(text[t] | text[:t]) (or of `asked` there) from the contexts of orders `top` down to -1,
    with exclusions: the probability, the order that coded it (-1: none), the rates it used."""
    token, excluded = text[t] if asked is None else asked, set()
    p, escapes = 1.0, []
    for k in range(top, -1, -1):
        counts = tables.get(text[t - k : t])
        if counts is None:
            continue
        total = distinct = 0
        for other, count in counts.items():
            if other not in excluded:
                total, distinct = total + count, distinct + 1
        if distinct == 0:
            continue
        count = counts.get(token)
        if distinct + len(excluded) == vocab_size:  # every token offered: no escape
            return p * (count / total), k, escapes
        key = (k, min(distinct, 4), min(total.bit_length(), 7), bool(excluded))
        rate = rates.get(key) or [PRIOR * distinct / (2 * total), PRIOR]
        if asked is None:  # the token read learns; another token asked about leaves no trace
            rates[key] = rate
        escape = min(max(rate[0] / rate[1], 1e-4), 0.999)
        if count is not None and token not in excluded:
            escapes.append((rate, 0.0))
            return p * ((1 - escape) * count / total), k, escapes
        p *= escape
        escapes.append((rate, 1.0))
        excluded.update(counts)
    return p / (vocab_size - len(excluded)), -1, escapes  # order -1: uniform over the rest


def distribution(text: str, t: int, top: int, tables, rates, vocab_size: int) -> list[float]:
    """p of every token at `t`, in one walk down the orders: for each token what `probability`
    gives when asked about it (the same products, so the same floats), leaving no trace."""
    out, excluded, p = [0.0] * vocab_size, set(), 1.0
    for k in range(top, -1, -1):
        counts = tables.get(text[t - k : t])
        if counts is None:
            continue
        offered = {other: count for other, count in counts.items() if other not in excluded}
        if not offered:
            continue
        total = sum(offered.values())
        if len(offered) + len(excluded) == vocab_size:
            for other, count in offered.items():
                out[ord(other)] = p * (count / total)
            return out
        key = (k, min(len(offered), 4), min(total.bit_length(), 7), bool(excluded))
        rate = rates.get(key) or [PRIOR * len(offered) / (2 * total), PRIOR]
        escape = min(max(rate[0] / rate[1], 1e-4), 0.999)
        for other, count in offered.items():
            out[ord(other)] = p * ((1 - escape) * count / total)
        p *= escape
        excluded.update(counts)
    rest = p / (vocab_size - len(excluded))
    return [rest if chr(v) not in excluded else q for v, q in enumerate(out)]
