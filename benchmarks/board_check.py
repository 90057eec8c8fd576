"""The dashboards and eval.py's page as a user sees them, in a real headless browser.

Trains two short runs of different kinds and a two-job sweep into one folder, starts
TensorBoard over it, and reads TIME SERIES, SCALARS and HPARAMS in Chromium: the tag groups
in the order shown and which are open, and the HPARAMS columns shown. Prints what it read,
saves a screenshot of each tab, and exits 1 if TIME SERIES or SCALARS do not open on train and
val, or if HPARAMS does not show a setting in which the runs differ.

    python benchmarks/board_check.py --data data/timemachine.txt --shots docs/board

With `--page PAGE.html ...` it reads pages that `eval.py ... page=true` wrote instead, from disk
with the network blocked: each page's size, the milliseconds from navigation until every
character is coloured (the page's own mark), five guesses on hover, the unit view; exits 1 if
a page fetches anything, leaves a character uncoloured, or is over 3 MB or 2 s.

    python benchmarks/board_check.py --page outputs/.../page-best-...-test.html --shots docs/page

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


def shoot(page, shots: Path | None, name: str, clip: dict | None = None) -> None:
    if shots is not None:
        page.screenshot(path=str(shots.with_name(f"{shots.name}_{name}.png")), clip=clip)


def read_page(path: Path, chromium: str, shots: Path | None) -> dict:
    """One page from disk, the network blocked: its size, render time and what hovering shows."""
    from playwright.sync_api import sync_playwright

    fetched, seen = [], {"page": str(path), "megabytes": round(path.stat().st_size / 2**20, 2)}
    colours = "s => s.filter(e => getComputedStyle(e).backgroundColor === 'rgba(0, 0, 0, 0)')"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        local = lambda r: r.request.url.startswith("file:")  # noqa: E731
        page.route("**/*", lambda r: r.continue_() if local(r) else (fetched.append(r), r.abort()))
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-coloured]", state="attached")
        seen["coloured_ms"] = int(page.evaluate("document.body.dataset.coloured"))
        seen["characters"] = page.eval_on_selector_all("#text span", "s => s.length")
        seen["uncoloured"] = page.eval_on_selector_all("#text span", colours + ".length")
        page.hover("#text span:nth-child(300)")
        seen["hover"] = page.inner_text("#tip").splitlines()
        shoot(page, shots, "surprisal")
        box = page.locator("#text").bounding_box()  # the README's picture: the first lines
        clip = {"x": box["x"], "y": box["y"], "width": min(box["width"], 640), "height": 130}
        shoot(page, shots, "small", clip=clip)
        if page.locator("#features tbody tr").count():
            seen["features"] = page.locator("#features tbody tr").all_inner_texts()
            page.click("#features tbody tr:nth-child(1)")  # the first feature's best unit
            page.hover("#text span:nth-child(300)")
            shoot(page, shots, "unit")
        browser.close()
    seen["fetched"] = len(fetched)
    return seen


def page_problems(seen: dict) -> list[str]:
    found = [f"{seen['page']}: {seen['fetched']} requests left the disk"] if seen["fetched"] else []
    if seen["uncoloured"]:
        found.append(f"{seen['page']}: {seen['uncoloured']} characters without a colour")
    if seen["megabytes"] > 3 or seen["coloured_ms"] > 2000:
        found.append(f"{seen['page']}: {seen['megabytes']} MB, {seen['coloured_ms']} ms")
    return found


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


def update(path: Path, found: dict) -> None:
    """The dashboards' and the pages' figures share one result file: each run updates its own."""
    kept = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**kept, **found}, indent=2, ensure_ascii=False) + "\n")


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
    parser.add_argument("--page", nargs="+", help="read these pages of eval.py page=true instead")
    args = parser.parse_args()
    shots = Path(args.shots) if args.shots else None
    if args.page:
        pages = [read_page(Path(p), args.chromium, shots) for p in args.page]
        for seen in pages:
            print(json.dumps(seen, ensure_ascii=False))
        found = [problem for seen in pages for problem in page_problems(seen)]
        if args.json:
            update(Path(args.json), {"pages": pages, "page_problems": found})
        raise SystemExit(1 if found else 0)
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
        update(Path(args.json), {**seen, "problems": found})
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    raise SystemExit(1 if found else 0)


if __name__ == "__main__":
    main()
