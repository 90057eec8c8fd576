"""The dashboards as a user sees them, in a real headless browser.

Trains two short runs of different kinds and a two-job sweep into one folder, starts
TensorBoard over it, and reads TIME SERIES, SCALARS and HPARAMS in Chromium: the tag groups
in the order shown and which are open, and the HPARAMS columns shown. Prints what it read,
saves a screenshot of each tab, and exits 1 if TIME SERIES or SCALARS do not open on train and
val, or if HPARAMS does not show a setting in which the runs differ.

    python benchmarks/board_check.py --data data/timemachine.txt --shots docs/board

Needs Chromium (Debian: apt-get install chromium) and playwright (pip install playwright;
`--chromium` names the browser, so playwright's own download is not needed).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BOOK = os.environ.get("RNNLM_TIMEMACHINE", "data/timemachine.txt")  # docs/development.md


ROOT = Path(__file__).resolve().parents[1]
SHORT = ["trainer.max_epochs=3"]
RUNS = {  # folder -> overrides: two single runs and a sweep, as outputs/ collects them
    "single/scratch": ["model=scratch"],
    "single/concise": ["model=concise", "model.lr=2"],
    "multirun": ["-m", "model.rnn.num_hiddens=16,48"],
}
DIFFER = ["model", "model/lr", "model/rnn/num_hiddens"]  # settings the runs differ in
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def train_runs(book: str, logdir: Path) -> None:
    for folder, overrides in RUNS.items():
        where = "hydra.sweep.dir" if overrides[0] == "-m" else "hydra.run.dir"
        command = [sys.executable, str(ROOT / "train.py"), *overrides, f"data.path={book}"]
        command += [*SHORT, f"{where}={logdir / folder}"]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tensorboard(logdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = ["tensorboard", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
    board = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):  # until it lists every run
        try:
            with urllib.request.urlopen(f"{url}/data/runs", timeout=2) as response:
                if len(json.loads(response.read())) >= 4:
                    return board, url
        except OSError:
            pass
        time.sleep(0.5)
    board.kill()
    raise SystemExit("error: TensorBoard did not list the runs within 60 s")


GROUPS = """() => Array.from(document.querySelectorAll('.card-group')).map(
    g => [g.querySelector('.group-title').innerText, g.querySelectorAll('card-view').length])"""


def read_tabs(url: str, chromium: str, shots: Path | None) -> dict:
    from playwright.sync_api import sync_playwright

    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/#timeseries")
        page.wait_for_selector(".card-group .group-title")
        page.wait_for_timeout(3000)  # the charts draw
        seen["time series groups (name, cards shown)"] = page.evaluate(GROUPS)
        shoot(page, shots, "time_series")
        page.goto(f"{url}/#scalars")
        page.wait_for_selector(".category-name")
        page.wait_for_timeout(3000)
        seen["scalars categories"] = page.locator(".category-name").all_inner_texts()
        shoot(page, shots, "scalars")
        page.goto(f"{url}/#hparams")
        page.get_by_text("Hyperparameters", exact=True).wait_for()
        page.wait_for_timeout(3000)
        seen["hparams columns shown"] = page.locator("paper-checkbox[checked]").all_inner_texts()
        shoot(page, shots, "hparams")
        browser.close()
    return seen


def shoot(page, shots: Path | None, name: str) -> None:
    if shots is not None:
        page.screenshot(path=str(shots.with_name(f"{shots.name}_{name}.png")))


def problems(seen: dict) -> list[str]:
    found = []
    groups = seen["time series groups (name, cards shown)"]
    if [name for name, _ in groups[:2]] != ["train", "val"] or not all(n for _, n in groups[:2]):
        found.append(f"TIME SERIES does not open on train and val: {groups}")
    if seen["scalars categories"][:2] != ["train", "val"]:
        found.append(f"SCALARS does not open on train and val: {seen['scalars categories']}")
    missing = [key for key in DIFFER if key not in seen["hparams columns shown"]]
    if missing:
        found.append(f"HPARAMS does not show {missing}, in which the runs differ")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=BOOK,
        help="the book (default: $RNNLM_TIMEMACHINE, else data/timemachine.txt)",
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    parser.add_argument("--shots", help="save screenshots as SHOTS_<tab>.png")
    parser.add_argument("--json", help="write what was read here")
    args = parser.parse_args()
    shots = Path(args.shots) if args.shots else None
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp) / "outputs"
        train_runs(args.data, logdir)
        board, url = start_tensorboard(logdir)
        try:
            seen = read_tabs(url, args.chromium, shots)
        finally:
            board.kill()
    for what, value in seen.items():
        print(f"{what}: {value}")
    found = problems(seen)
    if args.json:
        Path(args.json).write_text(json.dumps({**seen, "problems": found}, indent=2) + "\n")
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    raise SystemExit(1 if found else 0)


if __name__ == "__main__":
    main()
