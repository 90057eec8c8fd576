"""Models: the book's shape checks, rnnlm.fast == the book's classes == nn.RNN, LM, prediction."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from rnnlm.fast.core import FastRNNScratch
from rnnlm.fast.lm import Fast, FastRNNLM, FastRNNLMScratch
from rnnlm.lm import RNNLM, RNNLMScratch
from rnnlm.rnn import RNN, RNNScratch
from rnnlm.vocab import Vocab

from .helpers import books_predict, core, tokens


def check_len(a, n):
    assert len(a) == n, f"list's len {len(a)} != expected length {n}"


def check_shape(a, shape):
    assert a.shape == shape, f"tensor's shape {a.shape} != expected shape {shape}"


@pytest.fixture
def float64():
    """Tensors made in the test are float64 (the default dtype is restored after it)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def books_loop(rnn: RNNScratch) -> RNNScratch:
    """The same weights, run by the book's step-by-step loop."""
    book = RNNScratch(rnn.num_inputs, rnn.num_hiddens, activation=rnn.activation)
    book.load_state_dict(rnn.state_dict())
    return book


def torch_rnn_like(rnn: RNNScratch) -> torch.nn.RNN:
    ref = torch.nn.RNN(rnn.num_inputs, rnn.num_hiddens, nonlinearity=rnn.activation)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(rnn.W_xh.T)
        ref.weight_hh_l0.copy_(rnn.W_hh.T)
        ref.bias_ih_l0.copy_(rnn.b_h)
        ref.bias_hh_l0.zero_()
    return ref


@pytest.mark.parametrize("core", [RNNScratch, FastRNNScratch, RNN])
def test_books_shape_checks(core):
    batch_size, num_inputs, num_hiddens, num_steps = 2, 16, 32, 100
    rnn = core(num_inputs, num_hiddens)
    X = torch.ones((num_steps, batch_size, num_inputs))
    outputs, state = rnn(X)
    check_len(outputs, num_steps)
    check_shape(outputs[0], (batch_size, num_hiddens))
    check_shape(state.reshape(batch_size, num_hiddens), (batch_size, num_hiddens))


def test_scratch_init_as_book():
    torch.manual_seed(0)
    rnn = RNNScratch(28, 256, sigma=0.01)
    assert abs(rnn.W_xh.std().item() - 0.01) < 1e-3 and abs(rnn.W_hh.std().item() - 0.01) < 1e-3
    assert torch.count_nonzero(rnn.b_h) == 0


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("with_state", [False, True])
def test_fused_path_equals_the_books_loop(activation, with_state, float64):
    """FastRNNScratch (model=scratch) computes the book's loop: outputs, the last state
    and the gradients of every parameter and of a carried state are equal (in float64, so
    that the two orders of summation agree far below the tolerance on any CPU's kernels);
    so does torch.nn.RNN with the same weights, and the fused core reading one-hot rows."""
    torch.manual_seed(2)
    fused = FastRNNScratch(12, 16, sigma=0.3, activation=activation)
    with torch.no_grad():
        fused.b_h.normal_(0, 0.1)
    book = books_loop(fused)
    tokens = torch.randint(0, 12, (7, 3))
    state = torch.randn(3, 16, requires_grad=True) if with_state else None
    weights = torch.randn(7, 3, 16)
    figures = []
    one_hot = torch.nn.functional.one_hot(tokens, 12).double()  # the book's loop reads X_t
    for rnn, inputs in ((fused, tokens), (book, one_hot)):
        outputs, last = rnn(inputs, state)
        wrt = [*rnn.parameters(), *([state] if with_state else [])]
        grads = torch.autograd.grad((outputs * weights).sum() + last.sum(), wrt)
        figures.append((outputs, last, grads))
    (out_a, last_a, grads_a), (out_b, last_b, grads_b) = figures
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-12)
    torch.testing.assert_close(last_a, last_b, rtol=0, atol=1e-12)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    ref, ref_last = torch_rnn_like(fused)(one_hot, None if state is None else state[None])
    torch.testing.assert_close(ref, out_a, rtol=0, atol=1e-12)
    torch.testing.assert_close(ref_last[0], last_a, rtol=0, atol=1e-12)
    torch.testing.assert_close(fused(one_hot, state)[0], out_a, rtol=0, atol=1e-12)


def test_the_books_classes_train_as_the_fast_ones():
    """`model=scratch_book`: the book's LM and loop give model=scratch's loss and gradients."""
    torch.manual_seed(0)
    vocab = tokens(12)
    X, Y = torch.randint(0, 12, (2, 4, 9))
    losses = {}
    for lm, cell in ((FastRNNLMScratch, FastRNNScratch), (RNNLMScratch, RNNScratch)):
        torch.manual_seed(0)
        model = lm(core(cell, num_hiddens=8), vocab)
        loss = model.loss(model(X), Y)
        loss.backward()
        losses[lm] = (loss.item(), [p.grad.clone() for p in model.parameters()])
    (fast, fast_grads), (book, book_grads) = losses.values()
    assert fast == pytest.approx(book, abs=1e-6)
    for a, b in zip(fast_grads, book_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "make",
    [
        lambda V: RNNLMScratch(core(RNNScratch, num_hiddens=32), tokens(V)),
        lambda V: RNNLM(core(RNN, num_hiddens=32), tokens(V)),
        lambda V: FastRNNLMScratch(core(FastRNNScratch, num_hiddens=32), tokens(V)),
        lambda V: FastRNNLM(core(RNN, num_hiddens=32), tokens(V)),
    ],
)
def test_lm_logits_shape_and_one_hot_path(make):
    torch.manual_seed(0)
    V, batch_size, num_steps = 28, 2, 100
    model = make(V)
    X = torch.randint(0, V, (batch_size, num_steps))
    outputs = model(X)
    check_shape(outputs, (batch_size, num_steps, V))
    # the book's forward: one_hot(X) -> rnn -> output layer
    rnn_outputs, _ = model.rnn(model.one_hot(X))
    torch.testing.assert_close(outputs, model.output_layer(rnn_outputs), rtol=0, atol=1e-6)
    Y = torch.randint(0, V, (batch_size, num_steps))
    expected = F.cross_entropy(outputs.reshape(-1, V), Y.reshape(-1))
    torch.testing.assert_close(model.loss(outputs, Y), expected)


def test_concise_head_is_a_plain_linear():
    model = RNNLM(core(RNN, num_hiddens=32), tokens(28))
    assert isinstance(model.linear, torch.nn.Linear)
    assert model.linear.weight.shape == (28, 32)  # materialised: no lazy parameters (DDP)


@pytest.mark.parametrize(
    "lm, cell",
    [
        (RNNLMScratch, RNNScratch),
        (RNNLM, RNN),
        (FastRNNLMScratch, FastRNNScratch),
        (FastRNNLM, RNN),
    ],
)
def test_predict_equals_books_loop(lm, cell):
    torch.manual_seed(3)
    vocab = Vocab(list("the time machine by h g wells"))
    model = lm(
        core(cell, num_hiddens=32, **({"sigma": 0.5} if cell is not RNN else {})),
        vocab.idx_to_token,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    with torch.no_grad():
        expected = books_predict(model, "it has", 20, vocab)
    got = model.predict("it has", 20)
    assert got == expected and got.startswith("it has") and len(got) == 26


@pytest.mark.parametrize(
    "fast, book", [(FastRNNLMScratch, RNNLMScratch), (FastRNNLM, RNNLM)], ids=["scratch", "concise"]
)
def test_class_major_output_loss_equals_logits_then_cross_entropy(fast, book):
    """The fast output layer and loss (one matmul, class-major) give the book's loss and
    gradients; the logits handed on are the book's too."""
    torch.manual_seed(0)
    V = 28
    cell = core(FastRNNScratch, num_hiddens=16, sigma=0.3) if fast is FastRNNLMScratch else None
    cell = cell or core(RNN, num_hiddens=16)
    model = fast(cell, tokens(V), lr=1)
    reference = book(
        {**cell, "_target_": "rnnlm.rnn.RNNScratch"} if book is RNNLMScratch else cell, tokens(V)
    )
    reference.load_state_dict(model.state_dict())
    X = torch.randint(0, V, (5, 7), dtype=torch.uint8)  # batches travel as uint8
    Y = torch.randint(0, V, (5, 7), dtype=torch.uint8)
    expected = reference.loss(reference(X), Y)  # logits (batch, steps, vocab), F.cross_entropy
    expected_grads = torch.autograd.grad(expected, list(reference.parameters()))
    loss = model.batch_loss(X, Y)[0]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert torch.allclose(loss, expected, atol=1e-6)
    for a, b in zip(grads, expected_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert torch.allclose(model(X), reference(X), atol=1e-6)


def test_dropout_acts_on_embedded_inputs_and_outputs_only_in_training():
    torch.manual_seed(0)
    V = 10
    X = torch.randint(0, V, (6, 50))
    model = RNNLM(core(RNN, num_hiddens=16), tokens(V), lr=1, embedding=8, dropout=0.5)
    embedded = model.embedding(X)
    model.train()
    dropped = model.inputs(X)
    kept = dropped != 0
    assert 0.3 < kept.float().mean() < 0.7  # about half the embedded inputs are dropped
    assert torch.allclose(dropped[kept], 2 * embedded[kept])  # the rest scaled by 1/(1-p)
    model.eval()
    assert torch.equal(model.inputs(X), embedded)
    # The recurrent outputs: without an embedding, dropout acts there only.
    model = RNNLM(core(RNN, num_hiddens=16), tokens(V), lr=1, dropout=0.5).eval()
    clean = model.hidden(X)[0]
    model.train()
    outputs = model.hidden(X)[0]
    kept = outputs != 0
    assert 0.3 < kept.float().mean() < 0.7
    assert torch.allclose(outputs[kept], 2 * clean[kept])


@pytest.mark.parametrize("cell", ["RNN", "GRU", "LSTM"])
def test_weight_drop_drops_hidden_to_hidden_entries_only_in_training(cell):
    import rnnlm.cores

    torch.manual_seed(0)
    core = getattr(rnnlm.cores, cell)(5, 12, num_layers=2, weight_drop=0.5)
    X = torch.randn(7, 3, 5)
    plain = core.rnn
    core.eval()
    assert torch.equal(core(X)[0], plain(X)[0])  # evaluation: the full weights
    core.train()
    torch.manual_seed(1)
    outputs = core(X)[0]
    # The same draws by hand: dropout of each weight_hh_l*, then the torch module with them.
    reference = type(plain)(5, 12, num_layers=2)
    reference.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    masks = {}
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if name.startswith("weight_hh"):
                dropped = F.dropout(p, 0.5)
                masks[name] = dropped != 0
                getattr(reference, name).copy_(dropped)
    assert all(0.35 < m.float().mean() < 0.65 for m in masks.values())
    assert torch.allclose(outputs, reference(X)[0], atol=1e-6)
    assert not torch.allclose(outputs, plain(X)[0], atol=1e-3)
    # Gradients reach the parameters themselves, and only through the kept entries.
    outputs.sum().backward()
    for name, mask in masks.items():
        grad = getattr(plain, name).grad
        assert torch.all(grad[~mask] == 0) and grad[mask].abs().sum() > 0


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_weight_drop_out_of_range_is_refused(bad):
    from rnnlm.cores import RNN as DropConnectRNN
    from rnnlm.errors import UserError

    with pytest.raises(UserError, match=r"model\.rnn\.weight_drop=.*\[0, 1\)"):
        DropConnectRNN(5, 8, weight_drop=bad)


def test_variational_dropout_keeps_one_mask_per_sequence_across_steps():
    torch.manual_seed(0)
    V = 10
    X = torch.randint(0, V, (6, 40))  # (batch, num_steps)
    model = RNNLM(
        core(RNN, num_hiddens=16),
        tokens(V),
        lr=1,
        embedding=8,
        dropout=0.5,
        variational_dropout=True,
    )
    model.train()
    X_t = X.T  # time-major, as the model reads it
    embedded = model.embedding(X_t.long())
    dropped = model.inputs(X_t)
    kept = dropped != 0
    assert torch.equal(kept, kept[:1].expand_as(kept))  # the same mask at every step
    assert 0.3 < kept[0].float().mean() < 0.7
    assert torch.allclose(dropped[kept], 2 * embedded[kept])
    outputs = model.hidden(X_t)[0]
    zero = outputs == 0
    assert torch.equal(zero, zero[:1].expand_as(zero)) and zero.any()
    model.eval()
    assert torch.equal(model.inputs(X_t), embedded)


@pytest.mark.slow
def test_compiled_batch_loss_equals_eager_and_trains():
    torch.manual_seed(0)
    V = 12
    X, Y = torch.randint(0, V, (2, 16, 6), dtype=torch.uint8)
    model = FastRNNLMScratch(core(FastRNNScratch, num_hiddens=8), tokens(V), lr=1, compile=True)
    eager = super(Fast, model).batch_loss  # the book's batch loss, with the fast overrides
    assert model.compiled is None  # not built before setup
    model.setup("fit")  # as the Trainer does in the process that trains
    compiled = model.batch_loss(X, Y)[0]
    assert model.compiled is not None
    assert torch.allclose(compiled, eager(X, Y)[0], atol=1e-6)
    compiled.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    eager(X, Y)[0].backward()
    for grad, p in zip(grads, model.parameters(), strict=True):
        assert torch.allclose(grad, p.grad, atol=1e-6)
    # A smaller batch (an epoch's last) reuses the dynamic-shape graph, same numbers.
    assert torch.allclose(model.batch_loss(X[:5], Y[:5])[0], eager(X[:5], Y[:5])[0])


@pytest.mark.slow
def test_the_graph_replayed_loss_equals_the_eager_one():
    """`model.cuda_graphs`' path (compiled in reduce-overhead mode, a new step per call, the
    state copied out, gradients zeroed in place) computes what the eager path does; on a CPU
    the compiled code runs without graphs, so this checks all but the recording itself."""
    from rnnlm.cores import LSTM

    torch.manual_seed(0)
    model = FastRNNLM(core(LSTM, num_hiddens=8), [chr(97 + i) for i in range(10)], cuda_graphs=True)
    eager = super(Fast, model).batch_loss
    X, Y = torch.randint(0, 10, (3, 5)), torch.randint(0, 10, (3, 5))
    eager_loss, eager_state = eager(X, Y)
    eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()))
    model.record_cuda_graphs()  # what setup does when the trainer runs on CUDA
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    loss, state = model.batch_loss(X, Y)
    loss.backward()
    again, _ = model.batch_loss(X, Y, state)  # the copied state carries on into a new step
    assert loss.item() == pytest.approx(eager_loss.item(), abs=1e-5)
    for a, b in zip(state, eager_state, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    for p, g in zip(model.parameters(), eager_grads, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-5)
    assert again.item() == pytest.approx(eager(X, Y, state)[0].item(), abs=1e-5)
    optimizer = torch.optim.SGD(model.parameters(), lr=1)
    model.optimizer_zero_grad(0, 0, optimizer)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def test_a_cuda_graphs_checkpoint_is_scored_eagerly_on_a_cpu(trained_run, tmp_path):
    from rnnlm.checkpoints import load_lm
    from rnnlm.text.data import TextData

    from .helpers import scored

    _, ckpt = trained_run
    checkpoint = torch.load(ckpt, weights_only=False)
    checkpoint["hyper_parameters"]["cuda_graphs"] = True  # as trained on a GPU with the option
    graphs = tmp_path / "graphs.ckpt"
    torch.save(checkpoint, graphs)
    saved = {k: v for k, v in checkpoint["datamodule_hyper_parameters"].items() if k != "seed"}
    dm = TextData(**saved)
    dm.setup()
    model = load_lm(graphs)
    assert model.hparams.cuda_graphs
    assert scored(model, dm.loader("test")) == scored(load_lm(ckpt), dm.loader("test"))
    assert model.compiled is None  # no graphs without CUDA
