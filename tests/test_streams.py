"""The whole book: contiguous parts, streams with the state carried across batches (truncated
BPTT), and the test figure scored once per character."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from rnnlm.checkpoints import load_lm
from rnnlm.cores import GRU, LSTM
from rnnlm.errors import UserError
from rnnlm.lm import RNNLM, RNNLMScratch
from rnnlm.ops.trainer import bare_trainer
from rnnlm.rnn import RNN, RNNScratch
from rnnlm.text.data import TextData
from rnnlm.text.streams import Streams, shard
from rnnlm.train import train

from .conftest import TINY_OVERRIDES
from .helpers import SEQUENTIAL, core, scalars, scored, tokens

CODES = torch.arange(200, dtype=torch.uint8) % 97  # distinct enough to trace every character
IDENTITY = torch.arange(256)


def stream_text(streams: Streams, row: int) -> list[int]:
    """The characters row `row` reads over all batches: its first input, then every target."""
    batches = [streams[k] for k in range(len(streams))]
    return [batches[0][0][row, 0].item()] + [y for b in batches for y in b[1][row].tolist()]


def test_streams_partition_the_part_in_order():
    streams = Streams(CODES, IDENTITY, start=10, stop=110, num_streams=3, num_steps=8)
    assert streams.length == 33 and len(streams) == 4  # 32 targets: 8 + 8 + 8 + 8
    read = [stream_text(streams, r) for r in range(3)]
    assert [c for row in read for c in row] == CODES[10:109].tolist()  # 99 = 3 x 33, in order
    shapes = [streams[k][0].shape for k in range(4)]
    assert shapes == [(3, 8)] * 4
    X, Y, position = streams[1]
    assert torch.equal(X[:, 1:], Y[:, :-1]) and position == 8 and streams[0][2] == 0
    ragged = Streams(CODES, IDENTITY, 0, 30, num_streams=2, num_steps=4)  # 14 targets each
    assert [ragged[k][0].shape[1] for k in range(len(ragged))] == [4, 4, 4, 2]
    assert ragged.num_targets == 28


def test_ddp_shards_are_disjoint_and_cover_every_stream():
    for total, world in [(8, 2), (12, 3), (10, 4)]:
        blocks = [list(shard(total, r, world, contiguous=True)) for r in range(world)]
        assert all(b == list(range(b[0], b[0] + len(b))) for b in blocks)  # contiguous blocks
        flat = [i for b in blocks for i in b]
        assert len(set(flat)) == len(flat) == total // world * world
        every = [i for r in range(world) for i in shard(total, r, world, contiguous=False)]
        assert sorted(every) == list(range(total))
    # Each rank's training streams are the next batch_size streams of one division of the text.
    parts = [
        Streams(CODES, IDENTITY, 0, 200, 8, 5, shard(8, r, 2, contiguous=True)) for r in range(2)
    ]
    assert torch.equal(torch.cat([p.starts for p in parts]), torch.arange(0, 200, 25))


def test_contiguous_parts_do_not_overlap(tiny_corpus):
    dm = TextData(batch_size=4, num_steps=8, path=str(tiny_corpus), split="contiguous")
    dm.setup()
    parts = dm.parts()
    n = len(dm.corpus.chars)
    assert parts["train"][0] == 0 and parts["test"][1] == n
    assert parts["train"][1] == parts["val"][0] and parts["val"][1] == parts["test"][0]
    sizes = [b - a for a, b in parts.values()]
    assert sizes == pytest.approx([0.8 * n, 0.1 * n, 0.1 * n], abs=1)
    for name in ("train", "val"):  # windows stay inside their part
        windows = dm.examples(name)
        start, stop = parts[name]
        assert windows.start == start and windows.start + len(windows) + dm.num_steps == stop
    test = dm.examples("test")
    assert test.starts[0] == parts["test"][0] and test.starts[-1] + test.length <= n


def test_book_split_tests_on_the_text_after_its_windows(tiny_corpus):
    dm = TextData(batch_size=64, num_steps=8, num_train=600, num_val=300, path=str(tiny_corpus))
    dm.setup()
    assert dm.parts()["test"] == (600 + 300 + 8, len(dm.corpus.chars))
    assert len(dm.examples("train")) == 600 and len(dm.examples("val")) == 300
    test = dm.examples("test")
    assert isinstance(test, Streams) and test.num_streams == dm.eval_streams


def lm(kind: str, vocab_size: int = 12, seed: int = 0, **core_args) -> RNNLMScratch:
    torch.manual_seed(seed)
    cores = {"scratch": RNNScratch, "rnn": RNN, "gru": GRU, "lstm": LSTM}
    model_class = RNNLMScratch if kind == "scratch" else RNNLM
    model = model_class(core(cores[kind], num_hiddens=16, **core_args), tokens(vocab_size))
    with torch.no_grad():  # the book's sigma = 0.01 makes every output nearly the same
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.mark.parametrize("kind", ["scratch", "rnn", "gru", "lstm"])
def test_carried_state_equals_one_long_pass(kind):
    model = lm(kind).eval()
    X = torch.randint(0, 12, (3, 32))
    with torch.no_grad():
        whole = model(X)
        state, parts = None, []
        for k in range(4):
            outputs, state = model.hidden(X[:, 8 * k : 8 * k + 8].T, state)
            parts.append(model.output_layer(outputs))
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-5)


@pytest.mark.parametrize("kind", ["scratch", "lstm"])
def test_no_gradient_crosses_a_batch_boundary(kind):
    model = lm(kind).train()
    X = torch.randint(0, 12, (3, 17))
    first, second = (X[:, :8], X[:, 1:9], 0), (X[:, 8:16], X[:, 9:17], 8)
    model.scored_step(first, 1, "train")
    carried = model.carried.by_split["train"][1]
    tensors = [carried] if torch.is_tensor(carried) else list(carried)
    assert all(t.grad_fn is None and not t.requires_grad for t in tensors)
    model.zero_grad()
    model.scored_step(second, 1, "train").backward()
    truncated = [p.grad.clone() for p in model.parameters()]
    # The same two batches with the graph kept across the boundary: other gradients.
    model.zero_grad()
    _, state = model.batch_loss(first[0], first[1])
    model.batch_loss(second[0], second[1], state)[0].backward()
    through = [p.grad for p in model.parameters()]
    assert any(not torch.allclose(a, b) for a, b in zip(truncated, through, strict=True))
    # ...and the truncated gradient is that of the second batch from a constant state.
    model.zero_grad()
    _, state = model.batch_loss(first[0], first[1])
    constant = state.detach() if torch.is_tensor(state) else tuple(s.detach() for s in state)
    model.batch_loss(second[0], second[1], constant)[0].backward()
    for a, b in zip(truncated, (p.grad for p in model.parameters()), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_state_resets_at_every_epoch(tiny_corpus):
    dm = TextData(
        batch_size=4, num_steps=8, path=str(tiny_corpus), split="contiguous", sampling="sequential"
    )
    dm.eval_streams = 3
    dm.setup()
    model = lm("scratch", vocab_size=len(dm.vocab))
    started_from = []  # (training?, whether the batch started from a carried state)
    batch_loss = model.batch_loss

    def spy(X, Y, state=None):
        started_from.append((model.training, state is not None))
        return batch_loss(X, Y, state)

    model.batch_loss = spy
    bare_trainer(max_epochs=2, accelerator="cpu", devices=1, num_sanity_val_steps=0).fit(model, dm)
    train_batches, val_batches = len(dm.examples("train", True)), len(dm.examples("val"))
    epoch = [(True, False)] + [(True, True)] * (train_batches - 1)
    epoch += [(False, False)] + [(False, True)] * (val_batches - 1)
    assert started_from == epoch * 2


@pytest.mark.parametrize("kind", ["scratch", "lstm"])
def test_streamed_scoring_equals_each_stream_in_one_pass(kind, tiny_corpus):
    dm = TextData(batch_size=4, num_steps=8, path=str(tiny_corpus), split="contiguous")
    dm.eval_streams = 3
    dm.setup()
    model = lm(kind, vocab_size=len(dm.vocab))
    loss, count = scored(model, dm.loader("test"))
    streams = dm.examples("test")
    total = 0.0
    with torch.no_grad():
        for r in range(streams.num_streams):
            text = torch.tensor(stream_text(streams, r)).unsqueeze(0)  # the whole stream
            logits = model(text[:, :-1])
            total += F.cross_entropy(logits[0], text[0, 1:], reduction="sum").item()
    assert count == streams.num_targets == 3 * (streams.length - 1)
    assert loss == pytest.approx(total / count, rel=1e-5)


def test_sequential_run_logs_test_figures_and_eval_reproduces_them(
    compose_train, tiny_corpus, tmp_path
):
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, *SEQUENTIAL)
    train(cfg, tmp_path)
    logged = scalars(tmp_path)
    assert len(logged["train/loss"]) == 3 and logged["train/loss"][-1] < logged["train/loss"][0]
    (test_ppl,) = logged["~test/ppl"]
    assert logged["~test/bpc"][0] == pytest.approx(math.log2(test_ppl), rel=1e-5)
    (best,) = (tmp_path / "checkpoints").glob("best-*.ckpt")
    dm = TextData(**torch.load(best, weights_only=True)["datamodule_hyper_parameters"])
    dm.setup()
    assert scored(load_lm(best), dm.loader("test"))[0] == pytest.approx(
        math.log(test_ppl), rel=1e-5
    )
    assert dm.split == "contiguous" and dm.sampling == "sequential"


def test_a_train_part_too_small_for_its_streams(tiny_corpus):
    dm = TextData(
        batch_size=128,
        num_steps=8,
        num_train=600,
        num_val=300,
        path=str(tiny_corpus),
        sampling="sequential",
    )
    dm.setup()
    with pytest.raises(
        UserError, match=r"data.num_train=600 leaves the train part 608 .* 128 \* 9 = 1152"
    ):
        dm.check_sizes()


def test_a_batch_that_does_not_continue_the_streams_is_refused():
    model = lm("scratch")
    X = torch.randint(0, 12, (3, 25))
    batch = lambda first: (X[:, first : first + 8], X[:, first + 1 : first + 9], first)  # noqa: E731
    model.scored_step(batch(0), 1, "val")
    model.scored_step(batch(8), 1, "val")  # continues: carries the state on
    model.scored_step(batch(0), 1, "val")  # the streams start again (a new epoch): a zero state
    model.scored_step(batch(0), 1, "train")
    with pytest.raises(
        UserError, match=r"a train batch of streams starts at position 16 but the last ended at 8"
    ):
        model.scored_step(batch(16), 1, "train")  # batch 8 was skipped: its state would be wrong
    with pytest.raises(UserError, match="starts at position 8 but no batch before it"):
        model.scored_step(batch(8), 1, "test")
