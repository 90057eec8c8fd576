"""Data: preprocessing, Vocab, windows and their shifts, download with SHA-1, bad files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from rnnlm.data import (
    TimeMachine,
    Vocab,
    Windows,
    preprocess,
    tokenize,
)
from rnnlm.download import DATA_SHA1, download, read_text
from rnnlm.errors import UserError


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
    assert vocab.encode("hello zz").tolist() == vocab[list("hello zz")]


def test_vocab_encode_non_ascii_matches_lookup():
    vocab = Vocab(tokenize("café au lait"))
    text = "au café, über"
    assert vocab.encode(text).tolist() == vocab[list(text)]


def test_windows_are_shifted_by_one():
    corpus = torch.arange(100)
    windows = Windows(corpus, num_steps=5, start=10, count=20)
    X, Y = windows[3]
    assert X.tolist() == list(range(13, 18)) and Y.tolist() == list(range(14, 19))
    Xb, Yb = windows.__getitems__([0, 3, 19])
    assert Xb.shape == (3, 5) and torch.equal(Xb[1], X) and torch.equal(Yb[1], Y)
    assert torch.equal(Yb[:, :-1], Xb[:, 1:])
    assert Xb[2, 0].item() == 29


def test_datamodule_splits_batches_and_shuffle(tiny_corpus: Path):
    dm = TimeMachine(batch_size=64, num_steps=8, num_train=600, num_val=300, path=str(tiny_corpus))
    dm.setup()
    train = list(dm.train_dataloader())
    assert [len(x) for x, _ in train] == [64] * 9 + [24]
    assert all(x.shape == y.shape for x, y in train)
    # Every training window is seen exactly once per epoch, in shuffled order.
    starts = torch.cat([x[:, :3] for x, _ in train])
    expected = torch.stack([dm.corpus[i : i + 3] for i in range(600)])
    assert sorted(map(tuple, starts.tolist())) == sorted(map(tuple, expected.tolist()))
    assert not torch.equal(starts, expected)
    val = list(dm.val_dataloader())
    assert sum(len(x) for x, _ in val) == 300
    assert torch.equal(val[0][0][0], dm.corpus[600:608])  # validation follows training


def test_real_book_vocab_and_sizes(book: Path):
    dm = TimeMachine(path=str(book))
    dm.setup()
    assert len(dm.vocab) == 28
    assert dm.vocab.idx_to_token[:3] == [" ", "<unk>", "a"]
    assert len(dm.corpus) == len(preprocess(book.read_text()))
    X, Y = next(iter(dm.train_dataloader()))
    assert X.shape == (1024, 32) and torch.equal(X[:, 1:], Y[:, :-1])


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


def test_download_offline_error_names_the_fix(tmp_path: Path):
    with pytest.raises(UserError, match="data.path=FILE"):
        download((tmp_path / "absent.txt").as_uri(), tmp_path / "cache", DATA_SHA1)
    assert list((tmp_path / "cache").iterdir()) == []


def test_bad_files_get_clear_errors(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(UserError, match="binary"):
        read_text(tmp_path / "bin")
    (tmp_path / "latin1").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_text(tmp_path / "latin1")


def test_too_many_windows_names_corpus_size(tiny_corpus: Path):
    dm = TimeMachine(num_steps=8, num_train=10000, num_val=5000, path=str(tiny_corpus))
    dm.setup()
    with pytest.raises(UserError, match=r"15000 windows, but .* has \d+ tokens"):
        dm.train_dataloader()


@pytest.mark.parametrize("name", ["batch_size", "num_steps", "num_train", "num_val"])
def test_non_positive_sizes_rejected(name: str):
    with pytest.raises(UserError, match=f"data.{name}=0"):
        TimeMachine(**{name: 0})
