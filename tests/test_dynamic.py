"""Dynamic evaluation (rnnlm.scoring.dynamic): each segment scored before the weights learn from it,
step size 0 equal to static scoring, the weights put back, bad settings refused."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlm.cores import LSTM
from rnnlm.errors import UserError
from rnnlm.lm import RNNLM
from rnnlm.scoring.dynamic import (
    Adaptation,
    StepGain,
    dynamic_evaluation,
    dynamic_score,
    mean_squared_gradients,
)
from rnnlm.text.data import TextData

from .helpers import core, scored, tokens


def lstm(vocab_size: int = 12) -> RNNLM:
    torch.manual_seed(0)
    return RNNLM(core(LSTM, num_hiddens=16), tokens(vocab_size), embedding=8)


def ones(model) -> list[torch.Tensor]:
    """Unit mean squared gradients: every step is lr times the gradient (to 1e-5)."""
    return [torch.ones_like(p) for p in model.parameters() if p.requires_grad]


def segments(text: torch.Tensor, bptt: int) -> list[tuple]:
    """One stream of `text` as streamed batches of `bptt` characters."""
    return [
        (text[None, k : min(k + bptt, len(text) - 1)], text[None, k + 1 : k + bptt + 1], k)
        for k in range(0, len(text) - 1, bptt)
    ]


@pytest.mark.parametrize("adapt_lr", [0.0, 2.0])
def test_step_size_zero_is_static_scoring(tiny_corpus, adapt_lr):
    dm = TextData(batch_size=4, num_steps=8, path=str(tiny_corpus), split="contiguous")
    dm.setup()
    model = lstm(len(dm.vocab))
    static, count = scored(model, dm.loader("test"))  # Lightning's test loop, 8-step batches
    still = Adaptation(lr=0.0, decay=0.0, bptt=5, streams=dm.eval_streams, adapt_lr=adapt_lr)
    test = dm.streams("test", 5, dm.eval_streams)
    loss, tokens_scored = dynamic_score(model, test, still, ones(model))
    assert tokens_scored == count and loss == pytest.approx(static, abs=1e-6)


def test_another_texts_rms_steps_follow_the_models_own_train_part(tiny_corpus, tmp_path):
    own = TextData(batch_size=4, num_steps=8, path=str(tiny_corpus), split="contiguous")
    own.setup()
    other_path = tmp_path / "other.txt"
    other_path.write_text("the winds blew over the lamps of the old tower at dusk " * 12)
    other = TextData(batch_size=4, num_steps=8, path=str(other_path), vocab=own.vocab.idx_to_token)
    other.setup()
    model = lstm(len(own.vocab))
    rms = Adaptation(lr=1e-2, bptt=10, gradient_batches=3)
    loss, _, _ = dynamic_evaluation([model], other, "all", rms, own=own)
    part = other.streams("all", 10, 1)
    expected = {
        name: dynamic_score(
            model, part, rms, mean_squared_gradients(model, dm.streams("train", 10, 4), 3)
        )[0]
        for name, dm in (("own", own), ("scored", other))
    }
    assert loss == pytest.approx(expected["own"], rel=1e-6)
    assert abs(expected["own"] - expected["scored"]) > 1e-4  # the other text's would differ


def test_the_step_grows_while_it_keeps_its_direction():
    gain = StepGain(0.5)
    up = [torch.ones(3), torch.ones(2)]
    assert gain(up) == 1.0  # the first step: nothing to compare with yet
    assert gain([2 * u for u in up]) == pytest.approx(math.exp(0.5))  # the same direction
    assert gain([-u for u in up]) == pytest.approx(1.0)  # turned back: shrinks again
    fixed = StepGain(0.0)
    assert [fixed(up), fixed([-u for u in up])] == [1.0, 1.0]


def test_no_character_is_scored_by_weights_that_learned_from_it():
    torch.manual_seed(1)
    half = torch.randint(0, 12, (100,))
    text = torch.cat([half, half])  # the second half repeats the first
    model = lstm()
    before = [p.detach().clone() for p in model.parameters()]
    learn, still = Adaptation(lr=3.0, bptt=10), Adaptation(lr=0.0)
    # New text cannot get cheap by learning as it is read: a loop that stepped on each segment
    # before scoring it codes this first half 13% below the static model (2.155 against
    # 2.482 nats); scored first, it stays above 95% of it.
    static_first = dynamic_score(model, segments(half, 10), still, ones(model))[0]
    assert dynamic_score(model, segments(half, 10), learn, ones(model))[0] > 0.95 * static_first
    # The first segment is scored by the trained weights alone, and the weights are put back.
    first_segment = segments(text, 10)[:1]
    assert dynamic_score(model, first_segment, learn, ones(model))[0] == pytest.approx(
        dynamic_score(model, first_segment, still, ones(model))[0], abs=1e-7
    )
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # Text learned from first (read_first) is what makes the repetition cheaper.
    after = dynamic_score(model, segments(half, 10), learn, ones(model), [segments(half, 10)])[0]
    assert after < dynamic_score(model, segments(half, 10), learn, ones(model))[0]


def test_rms_steps_follow_the_train_parts_gradients(tiny_corpus):
    dm = TextData(batch_size=4, num_steps=8, path=str(tiny_corpus), split="contiguous")
    dm.setup()
    model = lstm(len(dm.vocab))
    squares = mean_squared_gradients(model, dm.streams("train", 10, 4), limit=5)
    assert len(squares) == len(list(model.parameters()))
    assert all(
        (s >= 0).all() and s.shape == p.shape
        for s, p in zip(squares, model.parameters(), strict=True)
    )
    rms = Adaptation(lr=1e-3, decay=1e-2, bptt=10)
    static = dynamic_score(model, dm.streams("val", 10, 1), Adaptation(lr=0.0), squares)[0]
    assert dynamic_score(model, dm.streams("val", 10, 1), rms, squares)[0] != static


def test_a_run_can_report_its_dynamic_test_figure_beside_the_static_one(
    compose_train, tiny_corpus, tmp_path
):
    import json
    import math

    from rnnlm.checkpoints import load_lm
    from rnnlm.train import train

    from .conftest import TINY_OVERRIDES
    from .helpers import SEQUENTIAL, scalars

    settings = {"lr": 1e-3, "decay": 1e-3, "bptt": 10, "streams": 1}
    dynamic = [f"+callbacks.dynamic_test.{k}={v}" for k, v in settings.items()]
    cfg = compose_train(
        f"data.path={tiny_corpus}",
        *TINY_OVERRIDES,
        *SEQUENTIAL,
        "+callbacks.dynamic_test._target_=rnnlm.scoring.dynamic.DynamicTest",
        "+callbacks.dynamic_test.read_first=[val]",
        *dynamic,
    )
    train(cfg, tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    logged = scalars(tmp_path)
    assert logged["~test/ppl_dynamic"] == [pytest.approx(results["test_ppl_dynamic"], rel=1e-6)]
    assert results["test_bpc_dynamic"] == pytest.approx(math.log2(results["test_ppl_dynamic"]))
    # The same figure as dynamic evaluation of the selected checkpoint, outside the run.
    model = load_lm(results["test_checkpoint"])
    dm = TextData(
        **torch.load(results["test_checkpoint"], weights_only=True)["datamodule_hyper_parameters"]
    )
    dm.setup()
    adaptation = Adaptation(**settings)
    squares = mean_squared_gradients(model, dm.streams("train", 10, dm.batch_size), 100)
    first = [dm.streams("val", 10, 1)]
    loss, _ = dynamic_score(model, dm.streams("test", 10, 1), adaptation, squares, first)
    assert results["test_ppl_dynamic"] == pytest.approx(math.exp(loss), rel=1e-5)
    assert "test_ppl" in results  # the static figure stays


def test_an_ensemble_averages_its_models_probabilities(tiny_corpus):
    from rnnlm.lm import RNNLMScratch
    from rnnlm.rnn import RNNScratch
    from rnnlm.scoring.ensemble import Ensemble

    dm = TextData(batch_size=4, num_steps=8, path=str(tiny_corpus), split="contiguous")
    dm.setup()
    vocab = dm.vocab.idx_to_token
    torch.manual_seed(0)
    one = RNNLM(core(LSTM, num_hiddens=16), vocab, embedding=8)
    torch.manual_seed(5)
    other = RNNLMScratch(core(RNNScratch, num_hiddens=16, sigma=0.5), vocab)
    alone = scored(one, dm.loader("test"))[0]
    assert scored(Ensemble([one], ["a"]), dm.loader("test"))[0] == pytest.approx(alone, abs=1e-6)
    # Averaging a model's probabilities with themselves changes nothing.
    assert scored(Ensemble([one, one], ["a", "a"]), dm.loader("test"))[0] == pytest.approx(
        alone, abs=1e-5
    )
    # Two different models: no worse than the mean of their losses (the log is concave).
    both = scored(Ensemble([one, other], ["a", "b"]), dm.loader("test"))[0]
    assert both <= (alone + scored(other, dm.loader("test"))[0]) / 2 + 1e-6
    # Dynamic evaluation of an ensemble of one is that model's, and step 0 is static scoring.
    rms = Adaptation(lr=0.5, bptt=10, streams=2)
    single = dynamic_score(one, dm.streams("test", 10, 2), rms, ones(one))[0]
    assert dynamic_score([one], dm.streams("test", 10, 2), rms, [ones(one)])[0] == single
    still = Adaptation(lr=0.0, bptt=10, streams=dm.eval_streams)
    units = [ones(one), ones(other)]
    ensemble = dynamic_score([one, other], dm.streams("test", 10), still, units)[0]
    assert ensemble == pytest.approx(both, abs=1e-5)


def test_an_ensemble_needs_checkpoints_of_one_vocabulary():
    from rnnlm.scoring.ensemble import Ensemble

    with pytest.raises(UserError, match=r"ckpt_path='b.ckpt' has a vocabulary of 9 tokens and "):
        Ensemble([lstm(12), lstm(9)], ["a.ckpt", "b.ckpt"])
    with pytest.raises(UserError, match=r"ckpt_path=\[\] is not allowed"):
        Ensemble([], [])


def test_the_parts_read_first():
    from rnnlm.scoring.run import parts_read_first

    assert parts_read_first("auto", "test") == ["val"] and parts_read_first("auto", "val") == []
    assert parts_read_first([], "test") == [] and parts_read_first(["val"], "test") == ["val"]
    with pytest.raises(UserError, match=r"dynamic_eval_read_first=\['test'\] is not allowed"):
        parts_read_first(["test"], "test")  # learning from the part it then scores
    with pytest.raises(UserError, match="among train, val and test"):
        parts_read_first(["vla"], "test")
    with pytest.raises(UserError, match=r"\(\[\] for split=all\)"):
        parts_read_first(["val"], "all")  # `all` holds the validation part
