"""The PPM model (rnnlm.scoring.ppm): a distribution at every position, learned from the past
only; its mixtures with a model (rnnlm.scoring.mixture): weights 1 and 0 give each part, the
weight chosen is the best, weights learned online never know the token they score."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlm.errors import UserError
from rnnlm.scoring.mixture import GeometricWeights, OnlineWeights, PPMMixture, mixed
from rnnlm.scoring.ppm import buckets, ppm_read

from .conftest import compose_config

SENTENCE = "a clock on the wall ticked while the kettle sang of tea and rain "


def targets(log_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A model's log p of every token (two: the target, 0, and the rest) and the targets."""
    rest = torch.log1p(-log_p.exp().clamp(max=1 - 1e-12))
    return torch.stack([log_p, rest], -1), torch.zeros(log_p.shape, dtype=torch.long)


def mix_targets(mixture: PPMMixture, log_p: torch.Tensor, position: int) -> torch.Tensor:
    dist, Y = targets(log_p)
    return mixture.mix(dist, position, Y)


def ids_of(text: str) -> tuple[list[int], int]:
    symbols = sorted(set(text))
    return [symbols.index(c) for c in text], len(symbols)


@pytest.mark.parametrize("order", [0, 2, 5])
def test_every_position_is_a_distribution_over_the_vocabulary(order):
    ids, size = ids_of(SENTENCE * 2)
    for t in (0, 1, 7, 40, 90):
        probs = [math.exp(ppm_read([*ids[:t], v], size, order)[0][-1]) for v in range(size)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-9) and min(probs) > 0


def test_a_token_is_predicted_from_the_tokens_before_it_only():
    ids, size = ids_of(SENTENCE * 3)
    whole = ppm_read(ids, size, 4)[0]
    for n in (1, 30, len(SENTENCE) + 5):
        assert torch.equal(ppm_read(ids[:n], size, 4)[0], whole[:n])
    # It learns as it reads: the repeats cost a fraction of the first reading.
    n = len(SENTENCE)
    first, again = -whole[:n].mean(), -whole[n : 2 * n].mean()
    assert again < 0.3 * first and first > 0.5 * math.log(size)


def test_mixture_weights_one_and_zero_are_each_part_and_the_chosen_weight_is_best():
    torch.manual_seed(0)
    table = torch.log(torch.rand(50, dtype=torch.float64) * 0.9 + 0.05)
    starts = torch.tensor([0, 25])
    model = torch.log(torch.rand(2, 4) * 0.9 + 0.05)  # targets 4..7 and 29..32 of the text
    offsets = torch.tensor([[4, 5, 6, 7], [29, 30, 31, 32]])
    dist, Y = targets(model)
    assert torch.allclose(PPMMixture(table, 1, starts, 3).mix(dist, 3, Y), model)
    assert torch.allclose(PPMMixture(table, 0, starts, 3).mix(dist, 3, Y).double(), table[offsets])
    half = PPMMixture(table, 0.5, starts, 3)
    expected = torch.log((model.double().exp() + table[offsets].exp()) / 2)
    assert torch.allclose(half.mix(dist, 3, Y).double(), expected, atol=1e-6)
    weight, loss = half.best_weight()
    grid = [float(-mixed(*half.tokens(), w / 100).mean()) for w in range(101)]
    assert loss <= min(grid) + 1e-7 and 0 <= weight <= 1
    assert half.model_loss() == pytest.approx(float(-model.mean()), abs=1e-6)


def test_what_the_ppm_knows_of_a_position_does_not_depend_on_its_token():
    ids, size = ids_of(SENTENCE * 2)
    for t in (0, 1, 5, 40, 90):
        known = {int(ppm_read([*ids[:t], v], size, 5)[1][-1]) for v in range(size)}
        assert len(known) == 1
    _, known, _ = ppm_read(ids, size, 5)
    # Nothing seen; the empty context followed by one token; 5 characters seen once before.
    assert known[0] == 0 and known[1] == 1 and known[len(SENTENCE) + 10] == 3 * 5 + 1
    assert int(known.max()) < buckets(5)


def recovered_weight(model, ppm, log_p):
    """The weight w of log(w e^model + (1 - w) e^ppm) = log_p."""
    return (log_p.double().exp() - ppm.exp()) / (model.double().exp() - ppm.exp())


def test_an_online_weight_never_scores_a_token_with_knowledge_of_it():
    torch.manual_seed(0)
    table = torch.log(torch.rand(400, dtype=torch.float64) * 0.5 + 0.02)  # a weak PPM
    known = torch.randint(0, buckets(3), (400,))
    starts = torch.tensor([0, 200])
    offsets = lambda position: starts.unsqueeze(1) + position + 1 + torch.arange(10)  # noqa: E731
    batches = [torch.log(torch.rand(2, 10) * 0.2 + 0.75) for _ in range(12)]  # a strong model
    runs = []
    for last in (batches[-1], torch.log(torch.rand(2, 10) * 0.5 + 0.01)):  # a weak last batch
        mixture = PPMMixture(table, 0.5, starts, 3, OnlineWeights(known, 3, 0.5, 50))
        outputs = [mix_targets(mixture, b, 10 * i) for i, b in enumerate([*batches[:-1], last])]
        runs.append((outputs, last))
    (first, last_a), (second, last_b) = runs
    # Up to the last batch the two runs read the same: the same mixtures.
    for a, b in zip(first[:-1], second[:-1], strict=True):
        assert torch.equal(a, b)
    # The weights of the last batch are the same whatever its own tokens' probabilities ...
    ppm = table[offsets(110)]
    used_a, used_b = (
        recovered_weight(m, ppm, o[-1]) for m, o in ((last_a, first), (last_b, second))
    )
    assert torch.allclose(used_a, used_b, atol=1e-4)
    # ... the first batch is mixed with the starting weight, and the strong model's share grew.
    first_used = recovered_weight(batches[0], table[offsets(0)], first[0])
    assert torch.allclose(first_used, torch.full_like(first_used, 0.5), atol=1e-4)
    assert used_a.min() > 0.6


@pytest.mark.parametrize(
    "start, memory, message",
    [
        (0.5, 0, "ppm_mixture.memory=0 is not allowed: it must be an integer >= 1"),
        (1.0, 100, "ppm_mixture.weight=1.0 with ppm_mixture.online=true is not allowed"),
        (0.0, 100, "ppm_mixture.weight=0.0 with ppm_mixture.online=true is not allowed"),
    ],
)
def test_impossible_online_settings_are_one_line(start, memory, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        OnlineWeights(torch.zeros(5, dtype=torch.int64), 2, start, memory)


def test_eval_mixes_a_checkpoint_with_ppm(trained_run):
    from rnnlm.evaluate import evaluate

    _, ckpt = trained_run
    base = [f"ckpt_path={ckpt}", "split=test", "ppm_mixture.order=3"]
    alone = evaluate(compose_config(f"ckpt_path={ckpt}", "split=test", name="eval"))
    model_only = evaluate(compose_config(*base, "ppm_mixture.weight=1", name="eval"))
    assert model_only == pytest.approx(alone, rel=1e-6)
    ppm_only = evaluate(compose_config(*base, "ppm_mixture.weight=0", name="eval"))
    # The PPM's loss on the scored characters, computed here from the text alone.
    from rnnlm.text.data import TextData

    saved = torch.load(ckpt, weights_only=True)["datamodule_hyper_parameters"]
    dm = TextData(**{k: v for k, v in saved.items() if k != "seed"})
    dm.setup()
    streams = dm.streams("test", 5)
    stop = dm.parts()["test"][1]
    table = ppm_read(dm.lut[dm.corpus.chars[:stop].long()].tolist(), len(dm.vocab), 3)[0]
    scored = torch.cat([table[s + 1 : s + streams.length] for s in streams.starts.tolist()])
    assert ppm_only == pytest.approx(math.exp(-scored.mean()), rel=1e-6)
    both = evaluate(compose_config(*base, "ppm_mixture.weight=0.5", name="eval"))
    assert both < (alone * ppm_only) ** 0.5  # mixing beats the mean of the two losses
    geometric = [*base, "ppm_mixture.kind=geometric"]
    assert evaluate(compose_config(*geometric, "ppm_mixture.weight=1", name="eval")) == (
        pytest.approx(alone, rel=1e-6)
    )
    assert evaluate(compose_config(*geometric, "ppm_mixture.weight=0", name="eval")) == (
        pytest.approx(ppm_only, rel=1e-5)
    )
    # Several orders: the model alone at exponent 1; the same order twice, half each, is that
    # order; exponents learned online move the figure.
    orders = [f"ckpt_path={ckpt}", "split=test", "ppm_mixture.kind=geometric"]
    two = [*orders, "ppm_mixture.order=[3,2]"]
    assert evaluate(compose_config(*two, "ppm_mixture.weight=1", name="eval")) == (
        pytest.approx(alone, rel=1e-6)
    )
    twice = [*orders, "ppm_mixture.order=[3,3]", "ppm_mixture.weight=0"]
    assert evaluate(compose_config(*twice, name="eval")) == pytest.approx(ppm_only, rel=1e-5)
    fixed = evaluate(compose_config(*two, "ppm_mixture.weight=0.5", name="eval"))
    learned = [*two, "ppm_mixture.weight=0.5", "ppm_mixture.online=true", "ppm_mixture.rate=0.01"]
    assert evaluate(compose_config(*learned, name="eval")) != pytest.approx(fixed, rel=1e-4)


def test_every_tokens_ppm_probability_is_a_distribution_that_holds_the_target():
    # Tokens that escape further than the text's do: asking about them must leave no trace.
    ids, size = ids_of(SENTENCE * 3 + "zebras quietly jumped over vexed wizards by the lake")
    log_p, _, full = ppm_read(ids, size, 4, full_from=30)
    assert full.shape == (len(ids) - 30, size)
    assert torch.allclose(full.exp().sum(-1), torch.ones(len(ids) - 30, dtype=torch.float64))
    assert torch.allclose(
        full.gather(1, torch.tensor(ids[30:]).unsqueeze(1)).squeeze(1), log_p[30:]
    )
    for t in (30, 31, 60, len(ids) - 1):  # each row as asking about every token in turn
        asked = [ppm_read([*ids[:t], v], size, 4)[0][-1] for v in range(size)]
        assert torch.equal(full[t - 30], torch.stack(asked))
    again, _, none = ppm_read(ids, size, 4)
    assert torch.equal(again, log_p) and none is None  # asking for the rows changes nothing


def test_a_geometric_mixture_is_the_normalised_product_of_the_two():
    torch.manual_seed(2)
    ppm_rows = torch.log_softmax(torch.randn(12, 5, dtype=torch.float64), -1)  # positions 8..19
    model = torch.log_softmax(torch.randn(1, 4, 5), -1)
    Y = torch.randint(0, 5, (1, 4))
    table = torch.zeros(20, dtype=torch.float64)
    mixture = PPMMixture(table, 0.7, torch.tensor([10]), [2], full=([ppm_rows], 8))
    got = mixture.mix(model, 2, Y)  # targets at 13..16
    product = 0.7 * model.double() + 0.3 * ppm_rows[5:9].unsqueeze(0)
    expected = torch.log_softmax(product, -1).gather(-1, Y.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(got.double(), expected, atol=1e-6)


def online_product(inputs: torch.Tensor, Y: torch.Tensor, rate: float) -> torch.Tensor:
    return GeometricWeights(inputs.shape[2], 0.6, rate).mix(inputs, Y)


def test_online_exponents_never_score_a_token_with_knowledge_of_it():
    torch.manual_seed(3)
    Y = torch.randint(0, 6, (2, 30))
    inputs = torch.log_softmax(torch.randn(2, 30, 3, 6, dtype=torch.float64), -1)
    right = 3 * torch.nn.functional.one_hot(Y, 6).double() + torch.randn(2, 30, 6)
    inputs[:, :, 0] = torch.log_softmax(right, -1)  # the model: mostly right
    out = online_product(inputs, Y, 0.05)
    # The first token (row 0, step 0) is the fixed product of the starting exponents ...
    assert torch.allclose(out[0, 0], online_product(inputs, Y, 0.0)[0, 0])
    # ... and a token's figure does not change whatever its own target or inputs are.
    other_y, other_x = Y.clone(), inputs.clone()
    other_y[1, 20], other_x[1, 20] = (Y[1, 20] + 1) % 6, inputs[0, 3]
    again = online_product(other_x, other_y, 0.05)
    changed = torch.zeros_like(Y, dtype=torch.bool)
    changed[1, 20:], changed[0, 21:] = True, True  # read step by step: (1, 20) precedes (0, 21)
    assert torch.equal(again[~changed], out[~changed]) and not torch.equal(again, out)
    # Read on, the exponents move toward the model that was right.
    weights = GeometricWeights(3, 0.6, 0.05)
    weights.mix(inputs, Y)
    assert weights.w[0] > 0.6 + 0.1


def test_online_exponents_at_rate_0_are_the_fixed_product():
    torch.manual_seed(4)
    inputs = torch.log_softmax(torch.randn(3, 8, 4, 5, dtype=torch.float64), -1)
    Y = torch.randint(0, 5, (3, 8))
    fixed = online_product(inputs, Y, 0.0)
    product = torch.einsum("k,rskv->rsv", torch.tensor([0.6] + [0.4 / 3] * 3).double(), inputs)
    assert torch.allclose(fixed, torch.log_softmax(product, -1).gather(-1, Y[..., None])[..., 0])
    assert torch.allclose(online_product(inputs, Y, 1e-12), fixed, atol=1e-9)


@pytest.mark.parametrize(
    "override, message",
    [
        ("ppm_mixture.weight=1.5", "ppm_mixture.weight=1.5 is not allowed: it must be a number"),
        ("ppm_mixture.order=-1", "ppm_mixture.order=-1 is not allowed: it must be an integer >= 0"),
        ("split=val", "ppm_mixture.order=3 needs split=val read as streams"),
        ("ppm_mixture.kind=log", "ppm_mixture.kind='log' is not allowed: use one of ['linear', "),
        ("ppm_mixture.order=[3,2]", "ppm_mixture.order=[3, 2] is not allowed: give one order"),
        (
            "ppm_mixture.order=[3,2.5] ppm_mixture.kind=geometric",
            "ppm_mixture.order=2.5 is not allowed: it must be an integer >= 0",
        ),
        (
            "ppm_mixture.kind=geometric ppm_mixture.online=true ppm_mixture.rate=-1",
            "ppm_mixture.rate=-1 is not allowed: it must be a number >= 0",
        ),
    ],
)
def test_bad_mixture_settings(trained_run, override, message, capsys):
    from rnnlm.evaluate import evaluate

    _, ckpt = trained_run
    order = [] if override.startswith("ppm_mixture.order") else ["ppm_mixture.order=3"]
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        args = [f"ckpt_path={ckpt}", "split=test", *order, *override.split()]
        evaluate(compose_config(*args, name="eval"))
    if override != "split=val":  # refused before the static figure (val's parts need the text)
        assert "loss" not in capsys.readouterr().out
