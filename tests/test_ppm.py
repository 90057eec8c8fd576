"""The PPM model (rnnlm.scoring.ppm): a distribution at every position, learned from the past
only; its product with a model (rnnlm.scoring.mixture): exponent 1 gives the model, 0 the PPM,
exponents learned online never know the token they score."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlm.errors import UserError
from rnnlm.scoring.mixture import GeometricWeights, PPMMixture
from rnnlm.scoring.ppm import ppm_read

from .conftest import compose_config

SENTENCE = "a clock on the wall ticked while the kettle sang of tea and rain "


def ids_of(text: str) -> tuple[list[int], int]:
    symbols = sorted(set(text))
    return [symbols.index(c) for c in text], len(symbols)


def token_log_p(ids: list[int], size: int, order: int) -> torch.Tensor:
    """The PPM's log p of each token of `ids`, from the ones before it."""
    return ppm_read(ids, size, order).gather(1, torch.tensor(ids).unsqueeze(1)).squeeze(1)


@pytest.mark.parametrize("order", [0, 2, 5])
def test_every_position_is_a_distribution_that_leaves_no_trace(order):
    # Tokens that escape further than the text's do: asking about them must leave no trace.
    ids, size = ids_of(SENTENCE * 2 + "zebras quietly jumped over vexed wizards")
    rows = ppm_read(ids, size, order)
    assert rows.shape == (len(ids), size) and bool((rows.exp() > 0).all())
    assert torch.allclose(rows.exp().sum(-1), torch.ones(len(ids), dtype=torch.float64))
    for t in (0, 1, 7, 40, len(ids) - 1):  # a row is what reading each token there would give
        asked = [token_log_p([*ids[:t], v], size, order)[-1] for v in range(size)]
        assert torch.equal(rows[t], torch.stack(asked))
    assert torch.equal(ppm_read(ids, size, order, full_from=30), rows[30:])


def test_a_token_is_predicted_from_the_tokens_before_it_only():
    ids, size = ids_of(SENTENCE * 3)
    whole = token_log_p(ids, size, 4)
    for n in (1, 30, len(SENTENCE) + 5):
        assert torch.equal(token_log_p(ids[:n], size, 4), whole[:n])
    # It learns as it reads: the repeats cost a fraction of the first reading.
    n = len(SENTENCE)
    first, again = -whole[:n].mean(), -whole[n : 2 * n].mean()
    assert again < 0.3 * first and first > 0.5 * math.log(size)


def test_the_mixture_is_the_normalised_product_of_the_two():
    torch.manual_seed(2)
    ppm_rows = torch.log_softmax(torch.randn(12, 5, dtype=torch.float64), -1)  # positions 8..19
    model = torch.log_softmax(torch.randn(1, 4, 5), -1)
    Y = torch.randint(0, 5, (1, 4))
    mixture = PPMMixture([ppm_rows], 8, torch.tensor([10]), [2], GeometricWeights(2, 0.7))
    got = mixture.mix(model, 2, Y)  # targets at 13..16
    product = 0.7 * model.double() + 0.3 * ppm_rows[5:9].unsqueeze(0)
    expected = torch.log_softmax(product, -1).gather(-1, Y.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(got.double(), expected, atol=1e-6)
    alone = model.gather(-1, Y.unsqueeze(-1)).squeeze(-1)
    assert mixture.model_loss() == pytest.approx(float(-alone.mean()), rel=1e-6)


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
    table = token_log_p(dm.lut[dm.corpus.chars[:stop].long()].tolist(), len(dm.vocab), 3)
    scored = torch.cat([table[s + 1 : s + streams.length] for s in streams.starts.tolist()])
    assert ppm_only == pytest.approx(math.exp(-scored.mean()), rel=1e-5)
    # Several orders: the model alone at exponent 1; the same order twice, half each, is that
    # order; exponents learned online move the figure.
    orders = [f"ckpt_path={ckpt}", "split=test"]
    two = [*orders, "ppm_mixture.order=[3,2]"]
    assert evaluate(compose_config(*two, "ppm_mixture.weight=1", name="eval")) == (
        pytest.approx(alone, rel=1e-6)
    )
    twice = [*orders, "ppm_mixture.order=[3,3]", "ppm_mixture.weight=0"]
    assert evaluate(compose_config(*twice, name="eval")) == pytest.approx(ppm_only, rel=1e-5)
    fixed = evaluate(compose_config(*two, "ppm_mixture.weight=0.5", name="eval"))
    learned = [*two, "ppm_mixture.weight=0.5", "ppm_mixture.online=true", "ppm_mixture.rate=0.01"]
    assert evaluate(compose_config(*learned, name="eval")) != pytest.approx(fixed, rel=1e-4)


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
        ("ppm_mixture.order=3 ppm_mixture.weight=1.5", "ppm_mixture.weight=1.5 is not allowed: it"),
        ("ppm_mixture.order=-1", "ppm_mixture.order=-1 is not allowed: it must be an integer >= 0"),
        ("ppm_mixture.order=3 split=val", "ppm_mixture.order=3 needs split=val read as streams"),
        ("ppm_mixture.order=[]", "ppm_mixture.order=[] is not allowed: give an order"),
        ("ppm_mixture.order=[3,2.5]", "ppm_mixture.order=2.5 is not allowed: it must be an"),
        ("ppm_mixture.order=3 ppm_mixture.online=true ppm_mixture.rate=-1",
         "ppm_mixture.rate=-1 is not allowed: it must be a number >= 0"),
        ("dynamic=true dynamic_eval.lr=-1", "dynamic_eval.lr=-1 is not allowed: it must be a"),
        ("dynamic=true dynamic_eval.bptt=0", "dynamic_eval.bptt=0 is not allowed: it must be an"),
        ("dynamic=true dynamic_eval.decay=-1", "dynamic_eval.decay=-1 is not allowed"),
        ("dynamic=true dynamic_eval.streams=0", "dynamic_eval.streams=0 is not allowed"),
        ("dynamic=true dynamic_eval.adapt_lr=-0.5", "dynamic_eval.adapt_lr=-0.5 is not allowed"),
        *((f"split=windows {beyond}", "split=windows scores every window from a zero state, "
           "statically: dynamic=true and ppm_mixture.order read the text as streams")
          for beyond in ("dynamic=true", "ppm_mixture.order=3")),
    ],
)  # fmt: skip
def test_bad_scoring_settings_are_refused_before_scoring(trained_run, override, message, capsys):
    from rnnlm.evaluate import evaluate

    _, ckpt = trained_run
    with pytest.raises(UserError) as err:
        evaluate(compose_config(f"ckpt_path={ckpt}", "split=test", *override.split(), name="eval"))
    assert message in str(err.value)
    if "split=val" not in override:  # refused before the static figure (val's parts need the text)
        assert "loss" not in capsys.readouterr().out
