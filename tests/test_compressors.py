"""The coders' yardstick (benchmarks/bench_compressors.py): bits are compressed-size
differences, on exactly the test part a run scores, with and without the optional PPMd and
zpaq."""

from __future__ import annotations

import builtins
import bz2
import importlib.util
import json
import sys
import zlib

import pytest

from .conftest import ROOT


def bench():
    if str(ROOT / "benchmarks") not in sys.path:  # its sibling book_path
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "bench_compressors", ROOT / "benchmarks/bench_compressors.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bits_are_the_compressed_size_differences():
    module = bench()
    prefix, text = b"the time machine " * 40, b"the time traveller " * 10
    coders = module.stdlib_coders()
    assert module.coded_bits(coders["zlib -9"], prefix, text) == 8 * (
        len(zlib.compress(prefix + text, 9)) - len(zlib.compress(prefix, 9))
    )
    assert module.coded_bits(coders["bz2 -9"], prefix, text) == 8 * (
        len(bz2.compress(prefix + text, 9)) - len(bz2.compress(prefix, 9))
    )
    # A text seen just before is cheap to code again: the prefix is what a coder adapts on.
    seen = module.coded_bits(coders["xz -9e"], text * 4, text)
    assert seen < module.coded_bits(coders["xz -9e"], b"", text) / 4


def test_the_test_part_is_the_runs(tiny_corpus):
    from rnnlm.text.data import TextData

    module = bench()
    text, cut = module.parts(str(tiny_corpus), "contiguous")
    dm = TextData(path=str(tiny_corpus), split="contiguous")
    dm.setup()
    assert cut == dm.parts() and len(text) == len(dm.corpus.chars)
    figures = module.measure(str(tiny_corpus), module.stdlib_coders(), ["contiguous"])
    start, stop = cut["test"]
    assert figures["contiguous"]["characters"] == stop - start
    zlib9 = module.stdlib_coders()["zlib -9"]
    expected = module.coded_bits(zlib9, text[:start].encode(), text[start:stop].encode())
    expected /= stop - start
    assert figures["contiguous"]["after train + val"]["zlib -9"] == round(expected, 4)


@pytest.mark.extra("compressors")
def test_ppmd_orders_when_installed():
    coders = bench().ppmd_coders()
    assert list(coders) == [f"PPMd order {k}" for k in (4, 5, 6, 7, 8)]
    text = b"it has a strange strange story " * 20
    assert bench().coded_bits(coders["PPMd order 6"], text, text) < 8 * len(text) / 10


@pytest.mark.extra("compressors")
def test_zpaq_bits_are_the_compressed_size_differences():
    import zpaq

    coders = bench().zpaq_coders()
    assert list(coders) == ["zpaq -m4", "zpaq -m5"]
    prefix, text = b"the time machine " * 40, b"the time traveller " * 10
    for level in (4, 5):
        sizes = [
            len(zpaq.compress(data, level=level, threads=1, hints=False))
            for data in (prefix + text, prefix)
        ]
        assert bench().coded_bits(coders[f"zpaq -m{level}"], prefix, text) == 8 * (
            sizes[0] - sizes[1]
        )
    story = b"it has a strange strange story " * 20
    assert bench().coded_bits(coders["zpaq -m5"], story, story) < 8 * len(story) / 10


def test_without_the_extra_the_stdlib_coders_still_run(tiny_corpus, tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_extra(name, *args, **kwargs):
        if name in ("pyppmd", "zpaq"):
            raise ImportError(f"no {name}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_extra)
    out = tmp_path / "figures.json"
    argv = ["x", "--data", str(tiny_corpus), "--json", str(out), "--splits", "contiguous"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        bench().main()
    assert stop.value.code == 2
    printed = capsys.readouterr()
    assert "| zlib -9 |" in printed.out and "PPMd" not in printed.out and "zpaq" not in printed.out
    assert printed.err.strip().splitlines() == [
        f"error: {module} is not installed, so {what} were not measured (the other coders "
        "were): pip install -e '.[compressors]'"
        for module, what in (("pyppmd", "PPMd orders 4-8"), ("zpaq", "zpaq -m4 and -m5"))
    ]
    measured = json.loads(out.read_text())["contiguous"]["after train"]
    assert set(measured) == {"zlib -9", "bz2 -9", "xz -9e"}
