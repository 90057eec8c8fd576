"""Bad input through the real CLI: exit code, one clear line naming the value, nothing left."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.errors import UserError
from rnnlm.sampling import generate
from rnnlm.vocab import Vocab, preprocess

from .conftest import TINY_OVERRIDES, cli
from .helpers import assert_one_line_error, core, refused

FAST = [o for o in TINY_OVERRIDES if not o.startswith("trainer.max_epochs")]


def run(*args: str, cwd: Path, script: str = "train.py") -> subprocess.CompletedProcess:
    return cli(script, *args, cwd=cwd)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\x00\x01binary\x00", "binary file"),
        ("Ab cd".encode("utf-16"), "is UTF-16 text (its first bytes say so); convert it"),
        ("caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8"),
        (b"1234 5678 ... 42", "contains no letters"),
    ],
)
def test_bad_text_files(tmp_path, content, fragment):
    book = tmp_path / "book.txt"
    if content is not None:
        book.write_bytes(content)
    assert fragment in refused("train", f"data.path={book}", *FAST, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "script, override, message",
    [
        ("train.py", "model=transformer", "Could not find 'model/transformer'"),
        ("train.py", "trainer.max_epoch=3", "Key 'max_epoch' is not in struct"),
        ("train.py", "logger=null", "logger=null is not allowed: to turn logger off write ~logger"),
        ("eval.py", "splt=test", "Key 'splt' is not in struct"),
        ("generate.py", "prefix=It Has!", "LexerNoViableAltException: prefix=It Has!"),
    ],
)
def test_what_hydra_catches_is_its_own_compact_message(tmp_path, script, override, message):
    out = run(override, cwd=tmp_path, script=script)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert message in out.stderr, out.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # refused before Hydra made a run folder


@pytest.mark.slow
def test_non_finite_loss_names_step_and_cause(tmp_path, tiny_corpus):
    out = run(
        f"data.path={tiny_corpus}",
        *FAST,
        "experiment=relu",
        "trainer.gradient_clip_val=null",
        "model.rnn.sigma=1.0",
        "model.lr=1000",
        "trainer.max_epochs=3",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert_one_line_error(out, "NaN or infinite at step", "no gradient clipping with ReLU")
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # no diverged weights kept


def test_unwritable_output_folder(tmp_path, tiny_corpus):
    out = run(f"data.path={tiny_corpus}", *FAST, "hydra.run.dir=/proc/rnnlm-run", cwd=tmp_path)
    assert_one_line_error(out, "hydra.run.dir='/proc/rnnlm-run' cannot be written")


@pytest.mark.slow
def test_multirun_with_ddp_is_refused(tmp_path, tiny_corpus):
    out = run(
        "-m",
        f"data.path={tiny_corpus}",
        *FAST,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "model.lr=1,2",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
    )
    assert out.returncode != 0 and "use trainer=ddp_spawn for sweeps" in out.stderr


# Property tests: prediction prefixes for any unicode.


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30))
def test_generation_accepts_any_preprocessed_unicode_prefix(prefix):

    from rnnlm.lm import RNNLMScratch
    from rnnlm.rnn import RNNScratch
    from rnnlm.vocab import BOOK_ALPHABET

    torch.manual_seed(0)
    vocab = Vocab(reserved_tokens=BOOK_ALPHABET)  # all that the book's cleaning leaves
    model = RNNLMScratch(core(RNNScratch, num_hiddens=8), vocab.idx_to_token)
    clean = preprocess(prefix)
    if not clean:
        return
    text = generate(model, clean, 5)[0]
    assert text.startswith(clean)
    continuation = text[len(clean) :]  # five tokens: characters, or "<unk>" (never in the book)
    assert len(continuation.replace("<unk>", "")) + continuation.count("<unk>") == 5


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.num_steps=0", "data.num_steps=0"),
        ("data.batch_size=-4", "data.batch_size=-4"),
        ("model.rnn.num_hiddens=0", "model.rnn.num_hiddens=0"),
        ("model.lr=0", "model.lr=0"),
        ("data.num_train=0.9", "1376 tokens"),  # counts alone would fall back to fractions
        ("data.fractions=[0.5,0.5]", "data.fractions=[0.5, 0.5] is not allowed: give three"),
        ("data.fractions=[0.8,0.3,-0.1]", "three fractions > 0"),
        ("data.split=random", "data.split='random' is not allowed: use one of ['book', "),
        ("data.sampling=shuffle", "data.sampling='shuffle' is not allowed: use one of ['windows'"),
        ("data.split=contiguous", "leaves the val part 138 of the 1376 characters"),
        ("data.eval_streams=0", "data.eval_streams=0 is not allowed"),
        ("seed=abc", "seed='abc' is not allowed: it must be an integer >= 0"),
        ("model.rnn.num_hiddens=32.5", "model.rnn.num_hiddens=32.5 is not allowed: it must be an"),
        ("callbacks.text_samples.every_n_epochs=0", "every_n_epochs=0 is not allowed"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 is not allowed: it must be an integer >= 1"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is not allowed"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1 is not allowed"),
        ("trainer.devices=512", "trainer.devices=512 CPU processes on a machine with"),
        ("trainer.devices=0", "trainer settings refused by Lightning: `Trainer(devices=0)`"),
        ("+trainer.max_epoch=3", "trainer settings refused by Lightning: Trainer.__init__() got "
         "an unexpected keyword argument 'max_epoch'"),
        ("+trainer.precision=float", "trainer settings refused by Lightning: Precision 'float' "),
        ("model/lr_scheduler=cosine model.lr_scheduler._target_=torch.optim.lr_scheduler.Cosine",
         "model.lr_scheduler._target_='torch.optim.lr_scheduler.Cosine' cannot be built"),
        ("matmul_precision=fast", "matmul_precision='fast' is not allowed: use one of ['highest', "
         "'high', 'medium']"),
        ("data.split=contiguous data.sampling=sequential trainer.use_distributed_sampler=true",
         "data.sampling=sequential with trainer.use_distributed_sampler=true is not allowed"),
        pytest.param("model.cuda_graphs=true", "model.cuda_graphs=true needs a CUDA GPU and this "
                     "machine has none", marks=pytest.mark.skipif(torch.cuda.is_available(),
                                                                  reason="a GPU is here")),
    ],
)  # fmt: skip
def test_settings_refused_before_training_leave_no_run_folder(
    compose_train, tiny_corpus, tmp_path, override, message
):
    from rnnlm.errors import UserError
    from rnnlm.train import train

    cfg = compose_train(f"data.path={tiny_corpus}", *FAST, *override.split())
    with pytest.raises(UserError) as err:
        train(cfg, tmp_path / "run")
    assert message in str(err.value)
    assert not (tmp_path / "run").exists() or files_under(tmp_path / "run") == []


@pytest.mark.slow
def test_gpu_trainer_without_a_gpu(tmp_path, tiny_corpus):

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    fast = [o for o in FAST if not o.startswith(("trainer.accelerator", "trainer.devices"))]
    out = run(f"data.path={tiny_corpus}", *fast, "trainer=gpu", cwd=tmp_path)
    assert_one_line_error(out, "trainer settings refused by Lightning: No supported gpu backend")


def test_without_a_logger_checkpoints_stay_in_the_run_folder(trained_run, compose_train, tmp_path):
    from rnnlm.train import train

    corpus, _ = trained_run
    train(compose_train(f"data.path={corpus}", *FAST, "~logger", "trainer.max_epochs=1"), tmp_path)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert not list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("script", ["eval.py", "generate.py"])
@pytest.mark.slow
def test_a_task_without_its_checkpoint(tmp_path, script):
    out = run(cwd=tmp_path, script=script)
    assert_one_line_error(out, "ckpt_path is required: add ckpt_path=... to the command line")


@pytest.mark.slow
def test_a_run_folder_holding_another_run_is_refused(trained_run, tmp_path):
    import shutil

    corpus, last = trained_run
    folder = tmp_path / "run"
    shutil.copytree(last.parents[1], folder)
    base = [f"data.path={corpus}", *TINY_OVERRIDES, f"hydra.run.dir={folder}"]
    # Hydra's own record of that run (the fixture trained without Hydra): write it as Hydra does
    (folder / ".hydra").mkdir(exist_ok=True)
    from omegaconf import OmegaConf

    from .conftest import compose_config

    OmegaConf.save(compose_config(*base[:-1]), folder / ".hydra" / "config.yaml")
    out = run(*base, "model=concise", cwd=tmp_path)
    assert_one_line_error(out, f"hydra.run.dir='{folder}' holds another run", "model._target_")
    assert (folder / "checkpoints" / "last.ckpt").is_file()  # nothing of it touched
    # The same run carried on in its folder (more epochs) stays allowed.
    out = run(*base, "trainer.max_epochs=4", "ckpt_path=last", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.rnn.num_hiddens=64", "holds another model or text (model.rnn.num_hiddens 16 in "
         "the checkpoint, 64 now): resume with the settings and data.path it was trained with"),
        ("model=concise", "model.class rnnlm.fast.lm.FastRNNLMScratch in the checkpoint, "
         "rnnlm.fast.lm.FastRNNLM now"),
        ("model.embedding=8", "model.embedding None in the checkpoint, 8 now"),
        ("trainer.max_epochs=3", "has already trained 3 epochs and trainer.max_epochs=3: nothing"),
    ],
)  # fmt: skip
def test_resuming_with_another_model_or_no_epoch_left_says_why(
    trained_run, compose_train, tmp_path, override, message
):
    from rnnlm.errors import UserError
    from rnnlm.train import train

    corpus, last = trained_run
    cfg = compose_train(
        f"data.path={corpus}", *FAST, "trainer.max_epochs=5", override, f"ckpt_path={last}"
    )
    with pytest.raises(UserError) as err:
        train(cfg, tmp_path / "again")
    assert message in str(err.value)
    assert not (tmp_path / "again").exists()


def test_ckpt_path_last_without_a_last_checkpoint_says_it_starts_fresh(
    compose_train, tiny_corpus, tmp_path, capsys
):
    from rnnlm.train import train

    run_dir = tmp_path / "run"
    train(
        compose_train(f"data.path={tiny_corpus}", *FAST, "trainer.max_epochs=1", "ckpt_path=last"),
        run_dir,
    )
    assert (
        f"ckpt_path=last: there is no {run_dir}/checkpoints/last.ckpt yet, so this run starts "
        "fresh" in capsys.readouterr().out
    )


def test_cuda_graphs_and_compile_are_one_or_the_other():
    from rnnlm.fast.core import FastRNNScratch
    from rnnlm.fast.lm import FastRNNLMScratch

    with pytest.raises(UserError, match="model.cuda_graphs=true and model.compile=true are not"):
        both = {"compile": True, "cuda_graphs": True}
        FastRNNLMScratch(core(FastRNNScratch, num_hiddens=4), ["a", "b"], **both)


def test_someone_elses_files_are_named_once_each(tmp_path):
    from omegaconf import OmegaConf

    from rnnlm.ops.folders import check_same_run

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "results.json").write_text("{}")
    config = OmegaConf.create({"hydra": {"output_subdir": ".hydra"}})
    with pytest.raises(UserError, match=r"\(checkpoints, results.json\): choose another"):
        check_same_run(config, tmp_path, {"checkpoints", "results.json"})


@pytest.mark.slow
def test_an_interpolation_that_cannot_be_resolved_is_one_line(tmp_path, tiny_corpus):
    out = run(f"data.path={tiny_corpus}", *FAST, "prefix='${x}'", "hydra.run.dir=run", cwd=tmp_path)
    assert_one_line_error(out, "Interpolation key 'x' not found")
    assert not (tmp_path / "run").exists()
