"""What a finished run reports: the figures results.json keeps and the lines it prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# results.json's keys for a language model, and the metrics they hold
RESULTS = {
    "val_ppl": "val/ppl",
    "best_val_ppl": "val/ppl_best",
    "train_ppl": "train/ppl",
    "test_loss": "test/loss",
    "test_ppl": "test/ppl",
    "test_bpc": "test/bpc",
    "val_bits_per_char": "val/bits_per_char",
    "test_bits_per_char": "test/bits_per_char",
    "test_tokens": "test/tokens",
    "test_ppl_dynamic": "test/ppl_dynamic",
    "test_bpc_dynamic": "test/bpc_dynamic",
}


def results(model, metrics: Mapping[str, float]) -> dict[str, Any]:
    """What results.json keeps of a run's `metrics`: `RESULTS`, or the model's own `results`."""
    if hasattr(model, "results"):
        return model.results(metrics)
    return {key: metrics[name] for key, name in RESULTS.items() if name in metrics}


def summary(model, results: Mapping[str, Any]) -> list[str]:
    """The lines printed at the end of a run: the model's own `summary`, or val/ppl (last and
    best: the checkpoint tested) and the test figures."""
    if hasattr(model, "summary"):
        return model.summary(results)
    lines = [f"val/ppl {results['val_ppl']:.3f} (best {results['best_val_ppl']:.3f})"]
    unit = "token" if "test_bits_per_char" in results else "character"  # words, bytes: tokens
    if "test_ppl" in results:
        lines.append(
            f"test/ppl {results['test_ppl']:.3f} ({results['test_bpc']:.3f} bits per {unit}, "
            f"{results['test_tokens']:.0f} {unit}s, {results['test_checkpoint']})"
        )
    if "test_bits_per_char" in results:
        unknown = (results.get("unknown_tokens") or {}).get("test", 0) / results["test_tokens"]
        lines.append(
            f"test/bits_per_char {results['test_bits_per_char']:.3f} (bits per character of the "
            + (
                "text: comparable with a character model's)"
                if unknown < 0.01
                else f"text; not comparable with a character model's: {unknown:.0%} of its test "
                "tokens were <unk>, each coded as one token)"
            )
        )
    if any((results.get("unknown_tokens") or {}).values()):
        unknown = results["unknown_tokens"]
        lines.append(
            "tokens outside the vocabulary, read as <unk>: "
            + ", ".join(f"{part} {n}" for part, n in unknown.items())
        )
    if "test_ppl_dynamic" in results:
        lines.append(
            f"test/ppl_dynamic {results['test_ppl_dynamic']:.3f} "
            f"({results['test_bpc_dynamic']:.3f} bits per character, dynamic evaluation)"
        )
    return lines
