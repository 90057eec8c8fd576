"""A PPM model's distribution at every position (Cleary and Witten, 1984: the longest context
seen, escaping with exclusion down to uniform; update exclusion; escapes estimated from similar
contexts, as in PPMd); mixed with a model's: `rnnlm.scoring.mixture`. pyppmd gives sizes, not
probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnlm.errors import UserError, require_count

# Secondary escape estimation: a rate starts as PPM-D's with the weight of PRIOR escapes and
# is halved when its count passes LIMIT, so it follows the text.
PRIOR, LIMIT = 8.0, 255.0


def ppm_read(ids: Sequence[int], vocab_size: int, order: int, full_from: int = 0) -> torch.Tensor:
    """log p of every token at every position t >= `full_from`, from ids[:t] only: a
    (len(ids) - full_from, vocab_size) float64 tensor, in one read of the text."""
    require_count("ppm_mixture.order", order, minimum=0)
    if any(not 0 <= i < vocab_size for i in ids):
        raise UserError(f"token ids must be in [0, {vocab_size}): the vocabulary's size")
    text = "".join(map(chr, ids))  # contexts are slices of a str: hashable and fast
    tables: dict[str, dict[str, int]] = {}
    rates: dict[tuple, list[float]] = {}
    rows = []
    for t, token in enumerate(text):
        top = min(order, t)
        row, found, escapes = walk(text, t, top, tables, rates, vocab_size, t >= full_from)
        if row is not None:
            rows.append(row)
        for rate, escaped in escapes:  # the escape rates learn from what they just coded
            rate[0] += escaped
            rate[1] += 1
            if rate[1] > LIMIT:
                rate[0], rate[1] = rate[0] / 2, rate[1] / 2
        for k in range(max(found, 0), top + 1):  # update exclusion: the orders that coded it
            counts = tables.setdefault(text[t - k : t], {})
            counts[token] = counts.get(token, 0) + 1
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, vocab_size).log()


def walk(text: str, t: int, top: int, tables, rates, vocab_size: int, whole: bool):
    """Down the orders `top` to -1 from position `t`, with exclusions: (p of every token if
    `whole`, else None; the order that coded text[t], -1 for none; the escape rates it used).
    Only text[t] creates the rates it uses: the other tokens' probabilities leave no trace."""
    token, excluded, p = text[t], set(), 1.0
    out = [0.0] * vocab_size if whole else None
    found, escapes = None, []
    for k in range(top, -1, -1):
        counts = tables.get(text[t - k : t])
        if counts is None:
            continue
        offered = {other: count for other, count in counts.items() if other not in excluded}
        if not offered:
            continue
        total = sum(offered.values())
        if len(offered) + len(excluded) == vocab_size:  # every token offered: no escape
            for other, count in offered.items() if whole else ():
                out[ord(other)] = p * (count / total)
            return out, k if found is None else found, escapes
        key = (k, min(len(offered), 4), min(total.bit_length(), 7), bool(excluded))
        rate = rates.get(key) or [PRIOR * len(offered) / (2 * total), PRIOR]
        if found is None:
            rates[key] = rate
        escape = min(max(rate[0] / rate[1], 1e-4), 0.999)
        for other, count in offered.items() if whole else ():
            out[ord(other)] = p * ((1 - escape) * count / total)
        if found is None:
            escapes.append((rate, 0.0 if token in offered else 1.0))
            found = k if token in offered else None
            if found is not None and not whole:
                return None, found, escapes
        p *= escape
        excluded.update(counts)
    if whole:
        rest = p / (vocab_size - len(excluded))  # order -1: uniform over the rest
        out = [rest if chr(v) not in excluded else q for v, q in enumerate(out)]
    return out, -1 if found is None else found, escapes
