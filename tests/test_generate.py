"""Generation, evaluation and resuming: generate.py, eval.py and train.py ckpt_path=."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.errors import UserError
from rnnlm.lm import RNNLM, RNNLMScratch
from rnnlm.rnn import RNN, RNNScratch
from rnnlm.sampling import Sampler, generate
from rnnlm.text.data import TextData
from rnnlm.train import train
from rnnlm.vocab import Vocab

from .conftest import TINY_OVERRIDES, TINY_TEXT, cli, compose_config
from .helpers import SEQUENTIAL, books_predict, core, events, refused, scalars, scored

VOCAB = Vocab(list("the time machine by h g wells"))


def random_lm(kind: str = "scratch", seed: int = 3) -> RNNLMScratch:
    torch.manual_seed(seed)
    if kind == "scratch":
        model = RNNLMScratch(core(RNNScratch, num_hiddens=32, sigma=0.5), VOCAB.idx_to_token)
    else:
        model = RNNLM(core(RNN, num_hiddens=32), VOCAB.idx_to_token)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return model


@pytest.mark.parametrize("kind", ["scratch", "concise"])
def test_greedy_generation_is_the_books_loop(kind):
    model = random_lm(kind)
    with torch.no_grad():
        expected = books_predict(model, "the time", 40, VOCAB)
    assert generate(model, "the time", 40)[0] == expected
    assert generate(model, "the time", 40, num_samples=3) == [expected] * 3  # batched


def test_low_temperature_and_top_k_1_are_greedy():
    model = random_lm()
    greedy = generate(model, "it has", 30)[0]
    cold = Sampler.from_options("sample", temperature=1e-4)
    top1 = Sampler.from_options("sample", top_k=1)
    g = torch.Generator().manual_seed(0)
    assert generate(model, "it has", 30, cold, num_samples=4, generator=g) == [greedy] * 4
    assert generate(model, "it has", 30, top1, num_samples=4, generator=g) == [greedy] * 4


def test_seeded_sampling_repeats_and_varies():
    model = random_lm()
    sampler = Sampler.from_options("sample", temperature=1.5)

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return generate(model, "it has", 40, sampler, num_samples=5, generator=g)

    first = draw(7)
    assert draw(7) == first
    assert len(set(first)) > 1 and draw(8) != first


def test_alpha_is_inverse_temperature_and_top_p_keeps_the_nucleus():
    assert Sampler.from_options("sample", alpha=4).temperature == 0.25
    logits = torch.tensor([[3.0, 2.0, -1.0, -2.0]])  # probabilities ~ .71 .26 .01 .005
    sampler = Sampler.from_options("sample", top_p=0.9)
    g = torch.Generator().manual_seed(0)
    drawn = {int(sampler(logits, g)) for _ in range(300)}
    assert drawn == {0, 1}


def test_warm_up_feeds_the_prefix_without_predicting_it():
    model = random_lm()
    calls = []
    original = model.output_layer
    model.output_layer = lambda h: calls.append(h.shape) or original(h)
    text = generate(model, "tttt", 3)[0]
    assert text.startswith("tttt") and len(text) == 7
    assert len(calls) == 3  # one output per predicted character, none for the prefix


@pytest.fixture
def trained(trained_run):
    """The shared tiny run (conftest): (its last.ckpt, its final val/ppl)."""
    _, ckpt = trained_run
    return ckpt, json.loads((ckpt.parents[1] / "results.json").read_text())["val_ppl"]


def test_checkpoint_is_self_contained(trained):
    ckpt, _ = trained
    model = load_lm(ckpt)
    assert isinstance(model, RNNLMScratch) and model.vocab is not None
    raw = torch.load(ckpt, weights_only=True)
    again = type(model)(**raw["hyper_parameters"])
    again.load_state_dict(raw["state_dict"])
    X = torch.randint(0, model.vocab_size, (4, 9))
    with torch.no_grad():
        assert torch.equal(model(X), again(X))
    assert again.predict("the time", 30) == model.predict("the time", 30)


def test_the_model_sets_its_cores_input_size(trained):
    ckpt, _ = trained
    hparams = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert "num_inputs" not in hparams["rnn"] and "vocab_size" not in hparams
    assert load_lm(ckpt).rnn.num_inputs == len(hparams["vocab"])
    wrong = {**hparams, "rnn": {**hparams["rnn"], "num_inputs": 3}}
    with pytest.raises(UserError, match=r"model.rnn is the core's config without num_inputs"):
        type(load_lm(ckpt))(**wrong)


@pytest.mark.slow
def test_generate_cli(trained, tmp_path):
    ckpt, _ = trained
    out = cli(
        "generate.py",
        f"ckpt_path={ckpt}",
        "prefix='It Has!'",
        "num_preds=15",
        "strategy=sample",
        "temperature=0.8",
        "num_samples=3",
        "seed=1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert (
        "preprocessed as in training (data.preprocess=book data.token=char): 'it has '" in lines[0]
    )
    assert len(lines) == 4 and all(len(x) == len("it has ") + 15 for x in lines[1:])
    assert list(tmp_path.iterdir()) == []  # writes nothing


@pytest.mark.parametrize(
    "args, message",
    [
        (["prefix=''"], "prefix=''"),
        (["num_preds=-2"], "num_preds=-2"),
        (["strategy=sample", "temperature=0"], "temperature=0"),
        (["strategy=sample", "temperature=-1"], "temperature=-1"),
        (["strategy=sample", "top_p=1.5"], "top_p=1.5"),
        (["strategy=beam"], "strategy='beam'"),
    ],
)
def test_generate_bad_input(trained, args, message):
    ckpt, _ = trained
    assert message in refused("generate", f"ckpt_path={ckpt}", *args)


def test_a_missing_foreign_or_cut_short_checkpoint_is_one_line(tmp_path):
    assert "does not exist" in refused("generate", f"ckpt_path={tmp_path}/none.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert "not a checkpoint written by rnnlm" in refused("generate", f"ckpt_path={foreign}")
    half = tmp_path / "half.ckpt"
    half.write_bytes(b"PK\x03\x04 not a whole zip")  # what a killed copy leaves behind
    assert "not a checkpoint written by rnnlm" in refused("eval", f"ckpt_path={half}")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n" * 100)
    assert refused("eval", f"ckpt_path={text}") == (
        f"ckpt_path='{text}' is not a checkpoint written by rnnlm's train.py (torch cannot read "
        "it as a checkpoint)"
    )  # torch's advice to load with weights_only=False (which runs code) is not passed on


@pytest.mark.slow
def test_eval_scores_other_text_of_the_vocabulary_or_says_what_is_outside(tmp_path):
    # The book's cleaning leaves 26 letters and a space, all in its vocabulary: another text
    # has characters outside a vocabulary when read as it is (data.preprocess=none).
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT)
    train(compose_config(f"data.path={corpus}", *TINY_OVERRIDES, "data.preprocess=none"), tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    other = tmp_path / "other.txt"
    other.write_text("Quixotic jazz: 42 zebras vex quick kings. " * 30)
    args = [f"ckpt_path={ckpt}", f"data.path={other}", "split=all"]
    known = set(load_lm(ckpt).vocab.idx_to_token)
    unknown = sum(c not in known for c in other.read_text())
    assert unknown > 0
    # Another vocabulary: one line naming the file, the count and the way out.
    out = cli("eval.py", *args, cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"has {unknown} characters outside the checkpoint's vocabulary" in out.stderr
    assert "allow_unk=true" in out.stderr
    out = cli("eval.py", *args, "allow_unk=true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{unknown} characters outside the checkpoint's vocabulary" in out.stdout
    assert math.isfinite(float(out.stdout.split("ppl ")[-1].split()[0]))


def test_eval_reproduces_the_runs_val_and_test_figures(trained, capsys):
    from rnnlm.evaluate import evaluate

    ckpt, val_ppl = trained
    assert evaluate(compose_config(f"ckpt_path={ckpt}", name="eval")) == pytest.approx(val_ppl)
    results = json.loads((ckpt.parents[1] / "results.json").read_text())
    (best,) = ckpt.parent.glob("best-*.ckpt")
    assert results["test_checkpoint"] == str(best)  # the weights val/ppl selected
    # The book's split tests on the text after its last validation window, as streams.
    assert results["test_tokens"] == 10 * ((1376 - (600 + 300 + 8)) // 10 - 1)
    logged = scalars(ckpt.parents[1])
    assert logged["~test/ppl"] == [pytest.approx(results["test_ppl"], rel=1e-6)]
    tested = evaluate(compose_config(f"ckpt_path={best}", "split=test", name="eval"))
    assert tested == pytest.approx(results["test_ppl"], rel=1e-5)
    assert "10 streams of 46 characters, state carried" in capsys.readouterr().out


@pytest.mark.parametrize(
    "layout",
    [
        [],  # the book's shuffled windows
        # streams with the state carried across batches, an LSTM (a tuple state)
        ["model=concise", "model.rnn._target_=rnnlm.cores.LSTM", *SEQUENTIAL],
    ],
)
@pytest.mark.slow
def test_resume_equals_uninterrupted(layout, compose_train, tiny_corpus, tmp_path):
    overrides = [f"data.path={tiny_corpus}", *TINY_OVERRIDES, *layout]
    train(compose_train(*overrides, "trainer.max_epochs=4"), tmp_path / "straight")
    train(compose_train(*overrides, "trainer.max_epochs=2"), tmp_path / "part")
    first = tmp_path / "part" / "checkpoints" / "last.ckpt"
    train(
        compose_train(*overrides, "trainer.max_epochs=4", f"ckpt_path={first}"),
        tmp_path / "resumed",
    )
    a = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    straight, resumed = scalars(tmp_path / "straight"), scalars(tmp_path / "resumed")
    assert resumed["val/ppl"] == straight["val/ppl"][2:]
    assert resumed["train/loss"] == straight["train/loss"][2:]
    # ckpt_path=last (a requeued cluster job): a fresh start, then the same folder carries on.
    requeued = tmp_path / "requeued"
    train(compose_train(*overrides, "trainer.max_epochs=2", "ckpt_path=last"), requeued)
    train(compose_train(*overrides, "trainer.max_epochs=4", "ckpt_path=last"), requeued)
    c = torch.load(requeued / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], c[k]) for k in a)
    # 2 + 2 epochs in two event files, no repeat. (Both runs start in the same second here,
    # so the files' names do not sort in time order: read each, order by step.)
    steps = {}
    for path in requeued.glob("events.out.tfevents.*"):
        accumulator = events(path)
        if "val/ppl" in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars("val/ppl"):
                assert event.step not in steps
                steps[event.step] = event.value
    assert [steps[step] for step in sorted(steps)] == straight["val/ppl"]


def test_resume_with_another_vocabulary_is_refused(trained, compose_train, tmp_path):
    ckpt, _ = trained
    other = tmp_path / "other.txt"
    other.write_text("Abc. " * 2000)
    # The book's cleaning of any text has the same vocabulary (its 26 letters and a space);
    # the text as it is has another, and another way of reading it is named first.
    raw = ("data.preprocess=none", "trainer.max_epochs=9")
    cfg = compose_train(f"data.path={other}", *TINY_OVERRIDES, f"ckpt_path={ckpt}", *raw)
    with pytest.raises(UserError, match="model.text.preprocess book in the checkpoint, none now"):
        train(cfg, tmp_path / "run")
    first = compose_train(f"data.path={other}", *TINY_OVERRIDES, "data.preprocess=none")
    train(first, tmp_path / "raw")
    other.write_text("Abc! " * 2000)
    cfg = compose_train(
        f"data.path={other}", *TINY_OVERRIDES, "data.preprocess=none", "trainer.max_epochs=9",
        f"ckpt_path={tmp_path / 'raw' / 'checkpoints' / 'last.ckpt'}",
    )  # fmt: skip
    with pytest.raises(UserError, match="another vocabulary"):
        train(cfg, tmp_path / "run2")


@pytest.mark.slow
def test_ema_checkpoint_holds_the_validated_average(compose_train, tiny_corpus, tmp_path):
    # experiment=best validates and checkpoints an exponential moving average of the weights:
    # the best checkpoint must hold the weights that scored its val/ppl, and eval.py re-scores it.
    cfg = compose_train(
        f"data.path={tiny_corpus}",
        *TINY_OVERRIDES,
        "+callbacks.ema._target_=pytorch_lightning.callbacks.EMAWeightAveraging",
        "+callbacks.ema.decay=0.5",
    )
    train(cfg, tmp_path / "run")
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("best-*.ckpt")
    saved = read_checkpoint(ckpt)
    average, current = saved["state_dict"], saved["current_model_state"]
    assert any(not torch.equal(average[k], current[k]) for k in average)
    # The same checkpoint with the trained (not averaged) weights, to show the test can tell.
    raw = tmp_path / "raw.ckpt"
    torch.save({**saved, "state_dict": current}, raw)

    def eval_ppl(path):
        out = cli("eval.py", f"ckpt_path={path}", cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        return float(out.stdout.split("ppl ")[-1].split()[0])

    best = min(scalars(tmp_path / "run")["val/ppl"])
    assert eval_ppl(ckpt) == pytest.approx(best, abs=1e-3)
    assert abs(eval_ppl(raw) - best) > 1e-2
    # The test figure after training (trainer.test with the selected checkpoint) is the
    # averaged weights', not the trained ones' that the checkpoint also keeps.
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    dm = TextData(**saved["datamodule_hyper_parameters"])
    dm.setup()
    averaged = scored(load_lm(ckpt), dm.loader("test"))[0]
    assert math.log(results["test_ppl"]) == pytest.approx(averaged, rel=1e-5)
    assert abs(scored(load_lm(raw), dm.loader("test"))[0] - averaged) > 1e-3


@pytest.mark.slow
def test_eval_dynamic_prints_the_static_and_the_dynamic_figure(trained, tmp_path):
    ckpt, _ = trained
    (best,) = ckpt.parent.glob("best-*.ckpt")
    results = json.loads((ckpt.parents[1] / "results.json").read_text())
    args = ["split=test", "dynamic=true", "dynamic_eval.bptt=5"]  # read first: auto, [val]
    out = cli("eval.py", f"ckpt_path={best}", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    static, dynamic = [line for line in out.stdout.splitlines() if line.startswith("loss ")]
    assert float(static.split("ppl ")[1].split()[0]) == pytest.approx(results["test_ppl"], abs=1e-3)
    assert "dynamic evaluation (lr 7e-05, decay 0.001, segments of 5, after learning from val" in (
        out.stdout
    )
    assert math.isfinite(float(dynamic.split("bpc ")[1]))
    # One stream scores more characters than the static figure's ten: the line says so.
    said = next(line for line in out.stdout.splitlines() if line.startswith("dynamic evaluation"))
    assert f"(the static figure's {results['test_tokens']:.0f}: streams leave out" in said


def test_eval_of_a_list_of_one_checkpoint_is_that_checkpoint(trained):
    from rnnlm.evaluate import evaluate

    from .conftest import compose_config

    ckpt, val_ppl = trained
    alone = evaluate(compose_config(f"ckpt_path={ckpt}", name="eval"))
    assert evaluate(compose_config(f"ckpt_path=[{ckpt}]", name="eval")) == pytest.approx(alone)
    assert alone == pytest.approx(val_ppl, rel=1e-5)
    twice = evaluate(compose_config(f"ckpt_path=[{ckpt},{ckpt}]", name="eval"))
    assert twice == pytest.approx(alone, rel=1e-5)  # the same probabilities, averaged
    assert refused("eval", "ckpt_path=[]") == (
        "ckpt_path=[] is not allowed: give one checkpoint or a list of them"
    )
