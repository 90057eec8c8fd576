"""The layout's rules, read from the code's imports (lazy imports inside functions too):

- the top of `src/rnnlm/` is the book and the three tasks; no top-level module but the tasks
  imports a wing (a subpackage);
- a wing imports the book and only the wings its `__init__` docstring names;
- no import cycle between modules;
- the sizes that keep it readable: no module over 250 lines, no function over 40, the top level
  at most 15 modules and 1,600 lines (the book, with what a language model reports, and the tasks).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "src" / "rnnlm"
TASKS = {"rnnlm.train", "rnnlm.generate", "rnnlm.evaluate"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
WINGS = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def imports(name: str) -> set[str]:
    """The project's modules that `name` imports, anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


def wing_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in WINGS) else None


def test_there_are_wings_beside_the_book():
    assert len(WINGS) >= 2, WINGS
    for wing in WINGS:
        assert ast.get_docstring(ast.parse((PACKAGE / wing / "__init__.py").read_text()))


def test_no_module_over_250_lines_no_function_over_40_and_a_small_top_level():
    lines = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    too_long = [f"{name}: {n} lines" for name, n in lines.items() if n > 250]
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > 40:
                    too_long.append(f"{name}.{node.name}: {size} lines (a function)")
    assert too_long == [], too_long
    top = {name: n for name, n in lines.items() if wing_of(name) is None}  # wc -l src/rnnlm/*.py
    assert len(top) <= 15 and sum(top.values()) <= 1600, (len(top), sum(top.values()))


def test_no_top_level_module_but_the_tasks_imports_a_wing():
    broken = [
        f"{name} imports {target} (the wing {wing_of(target)}): only the tasks "
        f"{sorted(TASKS)} may choose a wing"
        for name in MODULES
        if wing_of(name) is None and name not in TASKS and name != "rnnlm"
        for target in sorted(imports(name))
        if wing_of(target) is not None
    ]
    assert not broken, "\n".join(broken)


def named_wings(wing: str) -> set[str]:
    """The wings a wing's docstring says it imports: "the `ops` wing", "the `text` wing"."""
    doc = ast.get_docstring(ast.parse((PACKAGE / wing / "__init__.py").read_text())) or ""
    return set(re.findall(r"`(\w+)` wing", doc)) & set(WINGS)


def test_a_wing_imports_the_book_and_only_the_wings_it_names():
    broken = []
    for name in MODULES:
        wing = wing_of(name)
        if wing is None:
            continue
        allowed = named_wings(wing) | {wing}
        for target in sorted(imports(name)):
            other = wing_of(target)
            if other is not None and other not in allowed:
                broken.append(
                    f"{name} imports {target}: the {wing} wing's docstring names "
                    f"{sorted(allowed - {wing}) or 'no other wing'}"
                )
    assert not broken, "\n".join(broken)


def test_no_import_cycle():
    graph = {name: imports(name) for name in MODULES}
    done, path, cycles = set(), [], []

    def visit(name: str) -> None:
        if name in path:
            cycles.append(" -> ".join([*path[path.index(name) :], name]))
            return
        if name in done:
            return
        path.append(name)
        for target in sorted(graph[name]):
            if not target.startswith(f"{name}."):  # a package re-exporting its modules
                visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_default_training_step_reaches_the_books_forward_and_loss_within_four_calls(
    compose_train, tiny_corpus
):
    """`model=scratch`'s training_step -> ... -> forward and loss (the fast overrides of the
    book's), counting the calls between them (`self(X)` is one: torch's `Module.__call__`
    frames are not counted); no attribute dispatch through `__dict__` anywhere in src/."""
    import sys

    from hydra.utils import instantiate

    cfg = compose_train(f"data.path={tiny_corpus}", "data.batch_size=4", "data.num_steps=5")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model = instantiate(cfg.model, _recursive_=False, **dm.model_inputs())
    batch = next(iter(dm.train_dataloader()))
    stack, depth = [], {}

    def profile(frame, event, arg):
        if (
            event not in ("call", "return")
            or "torch/nn/modules/module.py" in frame.f_code.co_filename
        ):
            return
        if event == "return":
            if stack and stack[-1] is frame:
                stack.pop()
            return
        if stack or frame.f_code.co_name == "training_step":
            stack.append(frame)
            name = frame.f_code.co_name
            if name in ("forward", "loss") and frame.f_locals.get("self") is model:
                depth.setdefault(name, len(stack) - 1)

    sys.setprofile(profile)
    try:
        model.training_step(batch, 1)
    finally:
        sys.setprofile(None)
    assert depth == {"forward": 4, "loss": 4}, depth
    assert type(model).forward is type(model).__mro__[2].forward  # the book's forward itself
    assert not [p for p in PACKAGE.rglob("*.py") if "__dict__" in p.read_text()]
