"""The coders' yardstick, run as a user runs it (python benchmarks/bench_compressors.py): bits
are compressed-size differences, on exactly the test part a run scores."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib

from .conftest import ROOT


def test_bits_are_the_compressed_size_differences_of_the_runs_test_part(tiny_corpus, tmp_path):
    from rnnlm.text.data import TextData

    out = tmp_path / "figures.json"
    script = ROOT / "benchmarks/bench_compressors.py"
    args = ["--data", str(tiny_corpus), "--json", str(out), "--splits", "contiguous"]
    ran = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert ran.returncode in (0, 2), ran.stderr[-2000:]  # 2: an extra's coders are missing
    figures = json.loads(out.read_text())["contiguous"]
    dm = TextData(path=str(tiny_corpus), split="contiguous")
    dm.setup()
    text = bytes(dm.corpus.chars.tolist())
    start, stop = dm.parts()["test"]
    assert figures["characters"] == stop - start
    # zlib -9 of train + test minus zlib -9 of train, in bits per test character.
    prefix, test = text[:start], text[start:stop]
    bits = 8 * (len(zlib.compress(prefix + test, 9)) - len(zlib.compress(prefix, 9)))
    assert figures["after train + val"]["zlib -9"] == round(bits / (stop - start), 4)
    assert {"zlib -9", "bz2 -9", "xz -9e"} <= set(figures["after train"])
