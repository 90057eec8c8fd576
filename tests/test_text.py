"""Text as it is, bytes and words (`data.preprocess`, `data.token`, `rnnlm.vocab`)."""

from __future__ import annotations

import hashlib
import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.errors import UserError
from rnnlm.lm import RNNLMScratch
from rnnlm.rnn import RNNScratch
from rnnlm.sampling import generate
from rnnlm.text.cache import load_corpus
from rnnlm.text.data import TextData
from rnnlm.train import train
from rnnlm.vocab import BYTE_TOKENS, TextFormat, Vocab, preprocess

from .conftest import TINY_OVERRIDES, cli
from .helpers import core

# Sentences written for these tests: capitals, punctuation, digits, a line break, non-ASCII.
RAW = (
    "Mira counted 12 herons on the dam.\r\nThe river ran high; nobody crossed it!\n"
    "« Déjà vu », said Tomás, and laughed.\n"
)
TRAIN_PART = "Anna rows the boat. Anna rows it home.\n" * 30  # 1170 characters
LATER_PART = "Zoë sings: 42 songs!\n" * 4  # characters the train part never has


def data(path, **kwargs) -> TextData:
    settings = dict(path=str(path), batch_size=4, num_steps=5, split="contiguous")
    dm = TextData(**{**settings, **kwargs})
    dm.setup()
    return dm


def book_lines(text: str) -> list[str]:
    """The book's `read_time_machine` (d2l.ai §9.2, earlier edition): lines, each cleaned."""
    return [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in text.split("\n")]


def book_tokenize(lines: list[str], token: str = "word") -> list[list[str]]:
    """The book's `tokenize(lines, token)`, written here from its description."""
    return [line.split() if token == "word" else list(line) for line in lines]


def tokens_of(dm: TextData) -> list[str]:
    return [dm.corpus.symbols[c] for c in dm.corpus.chars.tolist()]


@pytest.mark.parametrize("token", ["char", "word"])
def test_the_vocabulary_comes_from_the_train_part_only(tmp_path, token):
    path = tmp_path / "text.txt"
    path.write_text(TRAIN_PART + LATER_PART)
    fmt = TextFormat("none", token)
    train = len(fmt.split(TRAIN_PART)) / len(fmt.split(TRAIN_PART + LATER_PART))
    fractions = [train, (1 - train) / 2, (1 - train) / 2]
    settings = dict(fractions=fractions, eval_streams=2, batch_size=1, num_steps=2)
    dm = data(path, preprocess="none", token=token, **settings)
    start, stop = dm.parts()["train"]
    seen_in_train = set(tokens_of(dm)[start:stop])
    assert set(dm.vocab.idx_to_token) == seen_in_train | {"<unk>"}
    later = [t for t in tokens_of(dm)[stop:] if t not in seen_in_train]
    assert later, "the later parts must hold tokens the train part lacks"
    unknown = dm.unknown()
    assert unknown["train"] == 0
    assert unknown["val"] + unknown["test"] == len(later)
    # ... and they reach the model as <unk>.
    X, Y, _ = dm.examples("test")[0]
    assert (torch.cat([X.flatten(), Y.flatten()]) == dm.vocab.unk).any()


def test_train_on_train_and_val_refits_on_both_parts(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TRAIN_PART + LATER_PART)
    settings = dict(preprocess="none", eval_streams=2, batch_size=1, sampling="sequential")
    apart, refit = data(path, **settings), data(path, train_on="train+val", **settings)
    assert refit.parts()["train"] == (0, apart.parts()["val"][1])
    assert refit.parts()["val"] == apart.parts()["val"]  # scored still, now seen text
    assert refit.parts()["test"] == apart.parts()["test"]
    val_text = "".join(tokens_of(apart)[slice(*apart.parts()["val"])])
    assert set(refit.vocab.idx_to_token) >= set(val_text)
    streams = refit.examples("train", training=True)  # one stream: batch_size=1
    assert streams.length == apart.parts()["val"][1]


def test_min_freq_sends_rare_train_tokens_to_unk(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("a b a b a b c a b " * 40)
    dm = data(path, preprocess="none", token="word", min_freq=41)
    assert dm.vocab.idx_to_token == ["<unk>", "a", "b"]
    assert sum(dm.unknown().values()) == 40


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_bytes_round_trip_any_input_exactly(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("bytes") / "any.bin"
    path.write_bytes(raw)
    corpus = load_corpus(path, fmt=TextFormat("none", "byte"))
    assert corpus.symbols == BYTE_TOKENS and corpus.chars.dtype == torch.uint8
    assert bytes(corpus.chars.tolist()) == raw


def test_raw_characters_keep_case_punctuation_and_line_breaks(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_bytes(RAW.encode("utf-8"))
    corpus = load_corpus(path, fmt=TextFormat("none", "char"))
    text = "".join(corpus.symbols[c] for c in corpus.chars.tolist())
    assert text == RAW.replace("\r\n", "\n")
    assert corpus.chars.dtype == torch.int32  # characters beyond the book's: int32 codes


def test_word_tokens_equal_the_books_tokenize(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text(RAW * 3)
    book = [w for line in book_tokenize(book_lines(RAW * 3), "word") for w in line]
    corpus = load_corpus(path, fmt=TextFormat("book", "word"))
    assert [corpus.symbols[c] for c in corpus.chars.tolist()] == book
    raw = load_corpus(path, fmt=TextFormat("none", "word"))
    assert [raw.symbols[c] for c in raw.chars.tolist()] == (RAW * 3).split()


@pytest.mark.parametrize(
    "fmt",
    [
        TextFormat(),
        *(TextFormat("none", t) for t in ("char", "byte", "word")),
        TextFormat("book", "word"),
    ],
    ids=str,
)
def test_the_memory_mapped_cache_gives_the_same_ids(tmp_path, monkeypatch, fmt):
    import rnnlm.text.corpus

    monkeypatch.setattr(rnnlm.text.corpus, "CHUNK_BYTES", 7)  # words and characters cut in two
    path = tmp_path / "text.txt"
    path.write_bytes((RAW * 5).encode("utf-8"))
    in_memory = load_corpus(path, fmt=fmt)
    cached = load_corpus(path, (tmp_path / "cache",), min_cache_bytes=1, fmt=fmt)
    assert cached.cache is not None and cached.chars.dtype == in_memory.chars.dtype
    assert torch.equal(cached.chars, in_memory.chars)
    assert cached.symbols == in_memory.symbols and cached.counts == in_memory.counts
    again = load_corpus(path, (tmp_path / "cache",), min_cache_bytes=1, fmt=fmt)
    assert again.cache == cached.cache and torch.equal(again.chars, in_memory.chars)
    # Read in one piece, the same tokens as read in 7-byte chunks.
    monkeypatch.setattr(rnnlm.text.corpus, "CHUNK_BYTES", 1 << 24)
    whole = load_corpus(path, fmt=fmt)
    assert [whole.symbols[c] for c in whole.chars.tolist()] == [
        in_memory.symbols[c] for c in in_memory.chars.tolist()
    ]
    assert whole.counts == in_memory.counts
    assert whole.sha1 == in_memory.sha1 == hashlib.sha1(path.read_bytes()).hexdigest()


def test_the_books_default_is_unchanged(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text(RAW * 40)
    dm = data(path, split="book", num_train=100, num_val=50)
    assert dm.vocab.idx_to_token == sorted([" ", "<unk>", *"abcdefghijklmnopqrstuvwxyz"])
    assert "".join(tokens_of(dm)) == preprocess(RAW * 40)
    assert dm.model_inputs()["text"] == {"preprocess": "book", "token": "char"}
    assert dm.characters_per_token("val") is None  # characters: bits per token are per character


def random_model(vocab: list[str], fmt: TextFormat) -> RNNLMScratch:
    torch.manual_seed(0)
    return RNNLMScratch(core(RNNScratch, num_hiddens=8), vocab, text=fmt.as_dict())


def test_generation_keeps_case_and_line_breaks():
    vocab = Vocab(list("Ab\n.")).idx_to_token
    model = random_model(vocab, TextFormat("none", "char"))
    with torch.no_grad():
        model.W_hq.zero_()
        model.b_q.zero_()
        model.b_q[vocab.index("\n")] = 5.0  # the most likely character: a line break
        model.b_q[vocab.index("<unk>")] = 9.0  # ... but <unk> is never written
    assert model.predict("Ab.", 3) == "Ab.\n\n\n"
    with pytest.raises(UserError, match=r"prefix='Ax' has 1 character .*\('x'\)"):
        model.predict("Ax", 3)


def test_byte_and_word_models_join_their_tokens():
    vocab = Vocab(["the", "time", "machine"]).idx_to_token
    words = random_model(vocab, TextFormat("book", "word"))
    text = generate(words, "the time", 4)[0]
    assert text.startswith("the time ") and len(text.split()) == 6
    with pytest.raises(UserError, match=r"1 word .*\('traveller'\)"):
        generate(words, "the time traveller", 2)
    joiner = TextFormat("none", "byte").joiner()
    e_acute = "é".encode()
    first = joiner([BYTE_TOKENS[b] for b in b"caf" + e_acute[:1]])
    assert first + joiner([BYTE_TOKENS[e_acute[1]]], final=True) == "café"


def bits_per_char_by_hand(dm: TextData, name: str, bits_per_token: float) -> float:
    """Total bits / characters of the targets, from the words' and bytes' own lengths."""
    examples = dm.examples(name)
    fmt, tokens = dm.format, tokens_of(dm)
    characters = 0
    for start in examples.starts.tolist():
        for token in tokens[start + 1 : start + examples.length]:
            if fmt.token == "word":
                characters += len(token) + 1
            else:
                characters += not 0x80 <= BYTE_TOKENS.index(token) < 0xC0
    return bits_per_token * examples.num_targets / characters


@pytest.mark.slow
@pytest.mark.parametrize("token", ["word", "byte"])
def test_word_and_byte_models_report_bits_per_character(compose_train, tmp_path, token):
    path = tmp_path / "raw.txt"
    path.write_text(RAW * 40)
    overrides = [o for o in TINY_OVERRIDES if not o.startswith(("data.num_", "data.batch"))]
    cfg = compose_train(
        f"data.path={path}", *overrides, "data.split=contiguous", "data.batch_size=4",
        "data.num_steps=8",
        "data.sampling=sequential", "data.preprocess=none", f"data.token={token}",
        "trainer.max_epochs=2", "prefix=the",
    )  # fmt: skip
    train(cfg, tmp_path / "run")
    results = __import__("json").loads((tmp_path / "run" / "results.json").read_text())
    dm = TextData(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    dm.setup()
    expected = bits_per_char_by_hand(dm, "test", results["test_bpc"])
    assert results["test_bits_per_char"] == pytest.approx(expected, rel=1e-5)
    assert "val_bits_per_char" in results and results["unknown_tokens"]["train"] == 0
    # The checkpoint carries how the text was read, and rebuilds a model that reads so.
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["hyper_parameters"]["text"] == {"preprocess": "none", "token": token}
    assert ckpt["datamodule_hyper_parameters"]["token"] == token
    model = load_lm(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert model.text_format == TextFormat("none", token)
    # eval.py: the same test figure, and the same bits per character.
    run = cli("eval.py", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
              "split=test", "allow_unk=true", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = re.search(r"bits per character of the text ([0-9.]+)", run.stdout)
    loss = float(re.search(r"loss ([0-9.]+)", run.stdout).group(1))
    assert float(found.group(1)) == pytest.approx(
        bits_per_char_by_hand(dm, "test", loss / math.log(2)), abs=2e-4
    )
    # generate.py: the prefix as it is, continued in this model's tokens.
    made = cli("generate.py", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
               "prefix=The river", "num_preds=12", "strategy=sample", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0].startswith("The river")
    if token == "word":
        assert len(made.stdout.split()) == 2 + 12
    refused = cli("eval.py", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
                  "data.token=char", cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 1
    assert "data.token=char is not how ckpt_path=" in refused.stderr
    assert f"data.preprocess=none data.token={token}" in refused.stderr


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"preprocess": "raw"}, "data.preprocess='raw' is not allowed"),
        ({"token": "bpe"}, "data.token='bpe' is not allowed"),
        ({"min_freq": 0}, "data.min_freq=0 is not allowed: it must be an integer >= 1"),
        ({"train_on": "val"}, "data.train_on='val' is not allowed: use one of ['train', "),
        (
            {"fractions": [0.5, 0.3, 0.3]},
            "three fractions > 0 for the train, val and test parts that sum to 1",
        ),
        ({"train_on": "train+val", "split": "book"}, "data.train_on=train+val needs data.split="),
        *(({"num_val": v}, f"data.num_val={v} is not allowed: it must be") for v in (1.0, -0.1)),
        *(({n: 0}, f"data.{n}=0 is not allowed") for n in ("batch_size", "num_steps", "num_train")),
    ],
)
def test_bad_data_settings_are_refused_in_one_line(tiny_corpus, settings, message):
    with pytest.raises(UserError, match=re.escape(message)):
        TextData(path=str(tiny_corpus), **settings)


def test_invalid_utf8_names_the_byte_and_bytes_take_it(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait, caf\xe9 noir ".encode("latin-1") * 30)
    with pytest.raises(UserError, match=r"is not UTF-8 text \(byte 3\)"):
        data(path, preprocess="none", token="char")
    dm = data(path, preprocess="none", token="byte")
    assert len(dm.vocab) == 256 and dm.vocab.unk is None


def test_a_word_vocabulary_too_large_says_which_min_freq_fits(tmp_path, monkeypatch):
    import rnnlm.text.counts

    monkeypatch.setattr(rnnlm.text.counts, "MAX_VOCAB", 5)
    path = tmp_path / "words.txt"
    path.write_text("a a a a b b b c c d e f " * 20)
    message = r"data.min_freq=1 keeps 7 words of the train part, more than 5: data.min_freq=\d+"
    with pytest.raises(UserError, match=message) as err:
        data(path, preprocess="none", token="word", batch_size=1)
    fits = int(re.search(r"data.min_freq=(\d+) keeps", str(err.value).split(": ")[1]).group(1))
    assert len(data(path, preprocess="none", token="word", batch_size=1, min_freq=fits).vocab) <= 5


def test_a_train_part_of_one_token_is_refused(tmp_path):
    path = tmp_path / "same.txt"
    path.write_text("aaaa " * 50)
    with pytest.raises(UserError, match="has 1 distinct words .* at least 2 are needed"):
        data(path, preprocess="none", token="word", batch_size=1)


@pytest.mark.slow
def test_generate_takes_any_prefix_and_says_what_has_no_effect(trained_run, tmp_path):
    _, ckpt = trained_run
    run = cli("generate.py", f"ckpt_path={ckpt}", "prefix='It Has!'", "temperature=0.5",
              "num_preds=5", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "temperature=0.5 has no effect with strategy=greedy: add strategy=sample" in run.stdout
    assert "prefix 'It Has!' preprocessed as in training" in run.stdout
    (tmp_path / "prompt.txt").write_text("The (odd) prompt: 1984!\n")
    from_file = cli("generate.py", f"ckpt_path={ckpt}", "prefix_file=prompt.txt",
                    "strategy=sample", "top_k=99", cwd=tmp_path)  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert "top_k=99 has no effect: the vocabulary has 28 tokens" in from_file.stdout
    assert "'the odd prompt '" in from_file.stdout
    digits = cli("generate.py", f"ckpt_path={ckpt}", "prefix=1984", cwd=tmp_path)
    assert digits.returncode == 0
    assert "is only spaces after the book's preprocessing" in digits.stdout
    missing = cli("generate.py", f"ckpt_path={ckpt}", "prefix_file=nope.txt", cwd=tmp_path)
    assert missing.returncode == 1 and "prefix_file='nope.txt' does not exist" in missing.stderr


def test_a_prefix_from_standard_input_is_taken_as_it_is(monkeypatch):
    import io

    from omegaconf import OmegaConf

    from rnnlm.generate import read_prefix

    monkeypatch.setattr("sys.stdin", io.StringIO("def f(x):\n    return x  # ok!\n"))
    cfg = OmegaConf.create({"prefix": "it has", "prefix_file": "-"})
    assert read_prefix(cfg) == "def f(x):\n    return x  # ok!\n"


def test_an_ensemble_needs_one_way_of_reading_text():
    from rnnlm.scoring.ensemble import check_same_vocabulary

    vocab = Vocab(list("ab ")).idx_to_token
    raw = random_model(vocab, TextFormat("none", "char"))
    book = random_model(vocab, TextFormat())
    with pytest.raises(UserError, match="read its text with data.preprocess=book"):
        check_same_vocabulary([raw, book], ["raw.ckpt", "book.ckpt"])
    check_same_vocabulary([raw, raw], ["raw.ckpt", "raw.ckpt"])


def test_bits_per_character_are_comparable_only_with_few_unknown_tokens():
    from rnnlm.metrics import summary

    results = {"val_ppl": 9.0, "best_val_ppl": 8.0, "test_ppl": 7.0, "test_bpc": 2.8}
    results |= {"test_tokens": 1000.0, "test_checkpoint": "best.ckpt", "test_bits_per_char": 1.7}
    for test_unk, said in ((5, "comparable with a character model's)"), (360, "not comparable")):
        lines = summary(results | {"unknown_tokens": {"train": 0, "test": test_unk}})
        line = next(line for line in lines if line.startswith("test/bits_per_char"))
        assert said in line
    assert "36% of its test tokens were <unk>" in line
    quiet = summary(results | {"unknown_tokens": {"train": 0, "test": 0}})
    assert not any("<unk>:" in line for line in quiet)  # no line for no unknown token
