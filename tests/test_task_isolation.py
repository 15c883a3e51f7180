"""Task knowledge stays in its task's package: no label-file suffix, folder glob, default file name,
digit alphabet or format name of a bundled task (every task under core/tasks/) appears in the product's
code outside that task's own package or module (core/, studio/, app.py), in code, strings or comments.

What is searched for comes from the tasks themselves (Task.formats, the digits fields' alphabets), so a
task added later is held to the same rule. Two places are exempt, each for its reason (EXEMPT).
"""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from core.tasks import all_tasks
from core.tasks.base import DIGITS

ROOT = Path(__file__).resolve().parent.parent
SCANNED = [ROOT / "app.py", *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "studio").rglob("*.py"))]
EXEMPT = {
    # The demo base's tokenizer is trained on this fixed text (the tasks' prompts among it); changing a
    # word changes the shipped model's tokenizer (CORPUS_VERSION), so it keeps the keys prompt verbatim.
    ("core/demo_corpus.py", "1-9"),
    # A task's per-dataset settings are JSON documents (studio.tabs.datasets.read_setting): the settings
    # upload takes .json files, which is not a label-file suffix there.
    ("studio/tabs/datasets.py", ".json"),
}


def _home(task) -> Path:
    """The task's own file or package folder."""
    path = Path(__import__(type(task).__module__, fromlist=["_"]).__file__)
    return path.parent if path.parent.parent.name == "tasks" else path


def _marks(task) -> list[tuple[str, str]]:
    """(kind, text) this task alone knows."""
    out = []
    for f in getattr(task, "formats", None) or []:
        out.append(("format name", f.name))
        out += [("suffix", s) for s in f.suffixes] + [("glob", g) for g in f.files]
        out += [("default file", f.default_name)] if f.default_name else []
    for f in task.fields:
        if f.kind == "digits" and f.digit_alphabet != DIGITS:
            out += [("digit alphabet", f.digit_alphabet), ("digit alphabet", f.alphabet_text())]
    return out


def _pieces(path: Path):
    """(line, text, is_literal) of every string literal and comment of a Python file."""
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if tok.type == tokenize.STRING:
            yield tok.start[0], tok.string, True
        elif tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string, False


def _finds(kind: str, mark: str, text: str, literal: bool) -> bool:
    if kind == "suffix":  # a bare suffix literal ".jsonl", or the suffix as a word ("a .csv file", "(.csv)")
        body = text.strip("'\"rbfu")
        return (literal and body == mark) or re.search(rf"(?:^|[\s(`]){re.escape(mark)}\b", text) is not None
    if kind == "format name":  # the name as a word of its own: "keylike", not "records.jsonl" or "Keylike (T4)"
        return re.search(rf"(?<![\w.*/-]){re.escape(mark)}(?![\w-])", text) is not None
    if kind == "digit alphabet":  # "1-9" as a range, not inside "11-90" or a date; "123456789", not "0123456789"
        return re.search(rf"(?<![\w.-]){re.escape(mark)}(?![\w-]|\.\d)", text) is not None
    return mark in text


def _bundled() -> dict:
    """Task name -> its home, for the tasks that live under core/tasks/."""
    tasks_dir = ROOT / "core" / "tasks"
    return {t.name: _home(t) for t in all_tasks().values() if tasks_dir in _home(t).parents}


def test_no_bundled_task_knowledge_outside_its_package():
    homes, found = _bundled(), []
    tasks = all_tasks()
    owners: dict[tuple, set] = {}  # a mark two tasks share (".jsonl") is at home in both packages
    for name in homes:
        for mark in _marks(tasks[name]):
            owners.setdefault(mark, set()).add(homes[name])
    for path in SCANNED:
        rel = path.relative_to(ROOT).as_posix()
        for line, text, literal in _pieces(path):
            for (kind, mark), places in owners.items():
                if any(path == h or h in path.parents for h in places) or (rel, mark) in EXEMPT:
                    continue
                if _finds(kind, mark, text, literal):
                    found.append(f"{rel}:{line}: the {kind} {mark!r} in {text.strip()[:80]!r}")
    assert not found, "Task knowledge outside its package:\n" + "\n".join(found)


def test_the_search_finds_what_it_looks_for():
    """The matcher itself: it sees the marks where they were before this rule, and not in look-alikes."""
    assert _finds("suffix", ".jsonl", "'.jsonl'", True) and _finds("suffix", ".json", "upload a .json file", False)
    assert not _finds("suffix", ".json", '"dataset.json"', True) and not _finds("suffix", ".json", '"x.jsonl"', True)
    assert _finds("format name", "keylike", '"keylike"', True) and _finds("format name", "ghost", "ghost (dataset", False)
    assert not _finds("format name", "jsonl", '"records.jsonl"', True)
    assert not _finds("format name", "keylike", '"Keylike"', True)  # the seed preset's name, not the format
    assert _finds("digit alphabet", "1-9", "not a depth digit 1-9.", True)
    assert not _finds("digit alphabet", "1-9", "2021-9-1", True)
    assert not _finds("digit alphabet", "123456789", '"0123456789"', True)
    assert not _finds("suffix", ".jsonl", "RUN/eval/<split>.jsonl", False)
    keys = all_tasks().get("keys")
    if keys is not None:  # the bundled keys task's marks are what the rule is about
        assert ("digit alphabet", "123456789") in _marks(keys) and ("format name", "keylike") in _marks(keys)
