"""The docs' commands, walked: every `python train.py|eval.py|generate.py ...` line in README.md
and docs/*.md composes with the real conf/ (every key exists, every group option exists, the
values parse), and every `python benchmarks/<script> --flag` names flags the script has."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from .conftest import CONF, ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def code_lines(page: Path) -> list[str]:
    """The shell lines of a page's fenced code blocks, `\\`-continued lines joined."""
    lines, inside, pending = [], False, ""
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside:
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            lines.append(pending.strip())
            pending = ""
    return lines


def documented(pattern: str) -> list[tuple[str, str]]:
    """(page, command) for every code line of the docs that runs `pattern`."""
    found = []
    for page in PAGES:
        assignments = {}  # B="..." on a line of its own, as whole_book.md writes its base
        for line in code_lines(page):
            assignment = re.fullmatch(r'(\w+)="([^"]*)"', line)
            if assignment:
                assignments[assignment[1]] = assignment[2]
                continue
            line = line.removeprefix("$ ")
            if re.match(pattern, line):
                line = SHELL_VARIABLE.sub(lambda m, known=assignments: known.get(m[1], "X"), line)
                line = re.sub(r"<[^>]*>", "PLACEHOLDER", line)  # outputs/<date>/<time>/...
                found.append((page.name, line.split("  #")[0].split(" # ")[0]))
    return found


ENTRY_POINTS = documented(r"python (train|eval|generate)\.py\b")
# Options that compose only with an extra's Hydra plugin installed.
NEEDS_EXTRA = {
    "hparams_search=optuna": "optuna",
    "hydra/launcher=slurm": "slurm",
    "hydra/launcher=submitit": "slurm",
}


def with_extras(page: str, command: str):
    extras = [extra for option, extra in NEEDS_EXTRA.items() if option in command]
    return pytest.param(page, command, marks=[pytest.mark.extra(*extras)] if extras else [])


def test_the_docs_have_commands_to_walk():
    assert len(ENTRY_POINTS) >= 40
    assert {c.split()[1] for _, c in ENTRY_POINTS} == {"train.py", "eval.py", "generate.py"}


@pytest.mark.parametrize(
    "page, command", [with_extras(*c) for c in ENTRY_POINTS], ids=[c for _, c in ENTRY_POINTS]
)
def test_every_documented_command_composes(page, command):
    words = shlex.split(command)
    name = words[1].removesuffix(".py")
    overrides = [w for w in words[2:] if not w.startswith("-")]
    for override in overrides:  # every option of a swept group exists
        key, _, value = override.partition("=")
        if (CONF / key.lstrip("+~")).is_dir() and "(" not in value:
            for option in value.split(","):
                assert (CONF / key.lstrip("+~") / f"{option}.yaml").is_file(), f"{page}: {command}"
    # A sweep composes with the first value of each swept key, as its first job does.
    first = [
        re.sub(r"=([^,=([]+),[^=]*$", r"=\1", o) for o in overrides if not o.startswith("hydra")
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        compose(config_name=name, overrides=first)


BENCHMARKS = documented(r"python benchmarks/\w+\.py\b")


def script_and_step(command: str) -> tuple[str, ...]:
    """A benchmark and its subcommand, if it has one (`choose_scoring.py dynamic`)."""
    words = command.split()
    return tuple(words[1:3]) if len(words) > 2 and words[2].isalpha() else (words[1],)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted({script_and_step(c) for _, c in BENCHMARKS}))
def test_documented_benchmark_flags_exist(script):
    """Each documented flag of a benchmark is one its --help lists."""
    shown = subprocess.run(
        [sys.executable, str(ROOT / script[0]), *script[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for page, command in BENCHMARKS:
        if script_and_step(command) == script:
            for flag in re.findall(r"(?<!\S)(--[\w-]+)", command):
                assert flag in shown.stdout, f"{page}: {command}: {flag}"
