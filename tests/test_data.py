"""Data: preprocessing, Vocab, windows and their shifts, shuffling, the memory-mapped cache,
fractions of the corpus, download with SHA-1, bad files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rnnlm.data import DATA_SHA1, Windows, download
from rnnlm.errors import UserError
from rnnlm.text.cache import load_corpus
from rnnlm.text.data import TextData
from rnnlm.text.sampler import Shuffle
from rnnlm.vocab import Vocab, preprocess, tokenize


def test_preprocess_is_the_books():
    assert preprocess("It's 1895!\n  The Time--Machine.") == "it s the time machine "
    assert tokenize("ab c") == ["a", "b", " ", "c"]


def test_vocab_sorted_with_unk_and_round_trip():
    vocab = Vocab(tokenize("hello world"))
    assert vocab.idx_to_token == sorted(vocab.idx_to_token)
    assert vocab.idx_to_token[:2] == [" ", "<unk>"]
    indices = vocab[list("hello")]
    assert "".join(vocab.to_tokens(indices)) == "hello"
    assert vocab["z"] == vocab.unk  # unseen character
    assert Vocab.from_tokens(vocab.idx_to_token).token_to_idx == vocab.token_to_idx
    assert vocab[list("hello zz")][-2:] == [vocab.unk, vocab.unk]


def test_windows_are_shifted_by_one():
    chars = torch.arange(100, dtype=torch.uint8)
    lut = torch.arange(256) * 2  # a code's index: twice the code
    windows = Windows(chars, lut, num_steps=5, start=10, count=20)
    X, Y = windows[3]
    assert X.tolist() == [2 * i for i in range(13, 18)] and Y.tolist() == [
        2 * i for i in range(14, 19)
    ]
    Xb, Yb = windows[torch.tensor([0, 3, 19])]
    assert Xb.shape == (3, 5) and torch.equal(Xb[1], X) and torch.equal(Yb[1], Y)
    assert torch.equal(Yb[:, :-1], Xb[:, 1:])
    assert Xb[2, 0].item() == 2 * 29


@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=300))
def test_cleaning_equals_the_books_preprocess(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("clean") / "t.txt"
    path.write_text("Ab" + text, encoding="utf-8")  # a letter, so the text is accepted
    corpus = load_corpus(path)
    assert bytes(corpus.chars.numpy()).decode("ascii") == preprocess("Ab" + text)


def test_memmap_cache_written_once_next_to_the_text_and_reused(tiny_corpus: Path, tmp_path):
    in_memory = load_corpus(tiny_corpus)
    first = load_corpus(tiny_corpus, (tiny_corpus.parent, tmp_path / "root"), min_cache_bytes=1)
    assert first.cache is not None and first.cache.parent == tiny_corpus.parent
    assert first.cache.name.startswith(f"tiny.txt.{first.sha1[:16]}")
    assert torch.equal(first.chars, in_memory.chars) and first.counts == in_memory.counts
    mtime = first.cache.stat().st_mtime_ns
    again = load_corpus(tiny_corpus, (tiny_corpus.parent,), min_cache_bytes=1)
    assert again.cache == first.cache and again.cache.stat().st_mtime_ns == mtime
    assert not list(tiny_corpus.parent.glob(".*.tmp"))  # no temp files left
    # A cache cut short (a killed run) is not taken for the text: it is written again.
    first.cache.write_bytes(first.cache.read_bytes()[:10])
    fixed = load_corpus(tiny_corpus, (tiny_corpus.parent,), min_cache_bytes=1)
    assert torch.equal(fixed.chars, in_memory.chars)
    # A changed text has another checksum, hence another cache file.
    tiny_corpus.write_text("Something else entirely")
    changed = load_corpus(tiny_corpus, (tiny_corpus.parent,), min_cache_bytes=1)
    assert changed.cache != first.cache and len(changed.chars) == 23


def test_memmap_cache_falls_back_to_root_when_the_text_folder_is_read_only(tiny_corpus, tmp_path):
    readonly = Path("/proc/self")  # cannot be written, even by root
    corpus = load_corpus(tiny_corpus, (readonly, tmp_path / "root"), min_cache_bytes=1)
    assert corpus.cache is not None and corpus.cache.parent == tmp_path / "root"
    # A data module's prepare_data (rank 0) writes it next to the text; setup maps it.
    dm = TextData(path=str(tiny_corpus), num_train=600, num_val=300, memmap_min_mb=0)
    dm.prepare_data()
    dm.setup()
    assert dm.corpus.cache is not None and dm.corpus.cache.parent == tiny_corpus.parent


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 65537])
def test_shuffle_is_a_permutation_that_depends_on_the_key(n):
    order = Shuffle(n, key=3)(torch.arange(n))
    assert torch.equal(order.sort().values, torch.arange(n))
    if n > 16:
        assert not torch.equal(order, Shuffle(n, key=4)(torch.arange(n)))
        assert not torch.equal(order, torch.arange(n))


def test_datamodule_splits_batches_and_shuffle(tiny_corpus: Path):
    dm = TextData(batch_size=64, num_steps=8, num_train=600, num_val=300, path=str(tiny_corpus))
    dm.setup()
    train = list(dm.train_dataloader())
    assert [len(x) for x, _ in train] == [64] * 9 + [24]
    assert all(x.shape == y.shape for x, y in train)
    # Every training window is seen exactly once per epoch, in shuffled order.
    tokens = torch.tensor(dm.vocab[list(bytes(dm.corpus.chars.numpy()).decode())])
    starts = torch.cat([x[:, :3] for x, _ in train]).long()
    expected = torch.stack([tokens[i : i + 3] for i in range(600)])
    assert sorted(map(tuple, starts.tolist())) == sorted(map(tuple, expected.tolist()))
    assert not torch.equal(starts, expected)
    val = list(dm.val_dataloader())
    assert sum(len(x) for x, _ in val) == 300
    assert torch.equal(val[0][0][0].long(), tokens[600:608])  # validation follows training


def test_fractions_of_the_corpus(tiny_corpus: Path):
    dm = TextData(batch_size=64, num_steps=8, num_train=0.8, num_val=0.1, path=str(tiny_corpus))
    dm.setup()
    windows = len(dm.corpus.chars) - 8
    assert (dm.num_train, dm.num_val) == (int(0.8 * windows), int(0.1 * windows))
    assert len(dm.examples("train")) == dm.num_train and len(dm.examples("val")) == dm.num_val


def test_real_book_vocab_and_sizes(book: Path):
    dm = TextData(path=str(book))
    dm.setup()
    assert len(dm.vocab) == 28
    assert dm.vocab.idx_to_token[:3] == [" ", "<unk>", "a"]
    assert len(dm.corpus.chars) == len(preprocess(book.read_text()))
    X, Y = next(iter(dm.train_dataloader()))
    assert X.shape == (1024, 32) and X.dtype == torch.uint8 and torch.equal(X[:, 1:], Y[:, :-1])


def test_download_checks_sha1_and_caches(tmp_path: Path, book: Path):
    url = book.resolve().as_uri()  # the real download code, served from a local file
    got = download(url, tmp_path / "cache", DATA_SHA1)
    assert got.read_bytes() == book.read_bytes()
    assert hashlib.sha1(got.read_bytes()).hexdigest() == DATA_SHA1
    mtime = got.stat().st_mtime_ns
    assert download(url, tmp_path / "cache", DATA_SHA1).stat().st_mtime_ns == mtime  # reused


def test_download_rejects_wrong_checksum_and_keeps_nothing(tmp_path: Path, tiny_corpus: Path):
    with pytest.raises(UserError, match="expected 090b5e7e.*discarded"):
        download(tiny_corpus.as_uri(), tmp_path / "cache", DATA_SHA1)
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_offline_error_names_the_fix(tmp_path: Path, tiny_corpus: Path):
    with pytest.raises(UserError, match="data.path=FILE"):
        download((tmp_path / "absent.txt").as_uri(), tmp_path / "cache", DATA_SHA1)
    assert not (tmp_path / "cache").exists()  # no empty data folder left behind
    # A copy that is there but fails its check is named, not "cannot download".
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "absent.txt").write_bytes(tiny_corpus.read_bytes())
    with pytest.raises(UserError, match="absent.txt has SHA-1 .*, not 090b5e7e.*cut short"):
        download((tmp_path / "absent.txt").as_uri(), tmp_path / "cache", DATA_SHA1)


def test_bad_files_get_clear_errors(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    (tmp_path / "bin").write_bytes(b"ab\x00\x01\x02")
    with pytest.raises(UserError, match="binary file .a NUL byte at 2"):
        load_corpus(tmp_path / "bin")
    (tmp_path / "latin1").write_bytes("caf\xe9 ok".encode("latin-1"))
    with pytest.raises(UserError, match=r"not UTF-8 text \(byte 3\)"):
        load_corpus(tmp_path / "latin1")
    (tmp_path / "cut").write_bytes("caf\xe9".encode()[:-1])
    with pytest.raises(UserError, match="ends inside a character"):
        load_corpus(tmp_path / "cut")
    for name in ("bin", "latin1", "cut"):  # nothing cached from a bad file
        with pytest.raises(UserError):
            load_corpus(tmp_path / name, (tmp_path / "cache",), min_cache_bytes=0)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_the_books_data_module_reads_the_text_as_the_text_wing_does(tiny_corpus):
    """`data=book` (rnnlm.data.TimeMachine): the same characters, vocabulary and windows as
    the default TextData; its shuffled batches hold every train window once; no test part."""
    from rnnlm.data import TimeMachine

    sizes = dict(batch_size=16, num_steps=8, num_train=200, num_val=60, path=str(tiny_corpus))
    book, text = TimeMachine(**sizes), TextData(**sizes)
    book.setup("fit")
    text.setup("fit")
    assert torch.equal(book.corpus.chars, text.corpus.chars)
    assert book.vocab.idx_to_token == text.vocab.idx_to_token and len(book.vocab) == 28
    for name in ("train", "val"):
        ours, theirs = book.examples(name), text.examples(name)
        every = torch.arange(len(ours))
        assert len(ours) == len(theirs) and all(
            torch.equal(a, b) for a, b in zip(ours[every], theirs[every], strict=True)
        )
    train = torch.cat([X for X, _ in book.train_dataloader()])
    windows = book.examples("train")[torch.arange(200)][0]
    assert len(train) == 200 and sorted(map(tuple, train.tolist())) == sorted(
        map(tuple, windows.tolist())
    )
    assert [len(X) for X, _ in book.val_dataloader()] == [16, 16, 16, 12]
    assert not book.has_test() and text.has_test()
