"""python -m core dataset import|validate|export|split|prelabel ...

import: exit 0 when the import ran (even with skipped records), 2 when SRC itself is unusable.
validate: exit 0 with no errors (warnings are fine), 1 with errors, 2 when the folder is not a dataset.
--json prints exactly one JSON object on stdout (on exit 2 too: {"error", "hint"}).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from core.dataset import META_FILE, Dataset, format_report
from core.errors import StudioError


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="import, validate, export and split datasets")
    dsub = p.add_subparsers(dest="dataset_command", required=True)

    seeds = _formats_text()
    imp = dsub.add_parser("import", help="add a folder of images, a .zip or a label file of a task's format")
    imp.add_argument("src", help="folder of images, .zip, an image, or a label file: " + seeds)
    imp.add_argument("--into", required=True, metavar="DATASET_DIR", help="created if it does not exist")
    imp.add_argument("--task", help="the task of a new dataset (needed for plain images; settles a label file two "
                     "tasks' formats read equally well): " + ", ".join(_task_names()))
    imp.add_argument("--schema", metavar="SCHEMA.json",
                     help="JSON Schema of the answer, for a new dataset of a task that takes one ("
                          + ", ".join(f"--task {n}" for n in _task_names(setting="schema")) + ")")
    imp.add_argument("--name", help="display name of a new dataset (default: folder name)")
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.set_defaults(func=cmd_import)

    val = dsub.add_parser("validate", help="report problems per record; changes nothing",
                          description="Report problems per record; changes nothing.",
                          epilog="exit status: 0 no errors (warnings are fine), 1 errors found, "
                                 "2 the folder is not a dataset (or cannot be read)")
    val.add_argument("dataset_dir")
    val.add_argument("--near", type=int, default=None,
                     help="near-duplicate distance in perceptual-hash bits (default: the task's near_duplicate)")
    val.add_argument("--json", action="store_true")
    val.set_defaults(func=cmd_validate)

    exp = dsub.add_parser("export", help="write a label format of the dataset's task, or hf")
    exp.add_argument("dataset_dir")
    exp.add_argument("--format", required=True, help="a format of the dataset's task or hf: " + _export_text())
    exp.add_argument("--out", required=True, help="a file (with the format's suffix) or a folder")
    exp.add_argument("--force", action="store_true", help="replace an existing export")
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(func=cmd_export)

    spl = dsub.add_parser("split", help="seeded train/val/test split of the labeled records")
    spl.add_argument("dataset_dir")
    spl.add_argument("--seed", type=int, default=42)
    spl.add_argument("--val", type=float, default=0.1)
    spl.add_argument("--test", type=float, default=0.0)
    spl.add_argument("--min-records", type=int, default=20,
                     help="with this many labeled records or fewer, everything trains")
    spl.add_argument("--json", action="store_true")
    spl.set_defaults(func=cmd_split)

    pre = dsub.add_parser("prelabel", help="a finished run answers the unlabeled records: suggestions to review")
    pre.add_argument("dataset_dir", metavar="DATASET", help="dataset folder, or a dataset name in the workspace")
    pre.add_argument("--run", required=True,
                     help="a finished run (folder or run id), or 'base' for the base model (--model)")
    pre.add_argument("--split", dest="which", default="unlabeled", choices=["unlabeled", "suggested"],
                     help="unlabeled: every record without a label (default); suggested: only those holding "
                          "another run's suggestion (a second opinion, to sort by disagreement)")
    pre.add_argument("--model", default="demo", help="the base model for --run base (default: the demo base)")
    pre.add_argument("--batch-size", type=int, default=8, help="images answered per generate call (default 8)")
    pre.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    pre.add_argument("--json", action="store_true", help="print the final state as one JSON object")
    pre.set_defaults(func=cmd_prelabel)


def _task_names(setting: str | None = None) -> list[str]:
    """Installed tasks (those that take a per-dataset `setting`, with one)."""
    from core.tasks import all_tasks

    return [n for n, t in all_tasks().items() if setting is None or setting in (getattr(t, "settings", None) or {})]


def _formats_text() -> str:
    """The installed tasks' label formats, for the help (core/label_formats.py)."""
    from core.label_formats import described

    return described() or "no installed task reads label files"


def _export_text() -> str:
    from core.exporters import seed_formats

    return ", ".join(f"{f.name} ({t})" for t, f in seed_formats()) + ", hf (any task)"


def read_schema(path) -> dict:
    """A --schema file: a JSON document (the task checks it is a usable schema)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise StudioError(f"Cannot read the schema {p}: {e.strerror or e}.", "Give the path of the schema file (a JSON document).") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StudioError(f"{p.name} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.",
                          "Fix the schema file (a missing comma or bracket?).") from e


def _json_errors(func):
    """With --json, a StudioError becomes {"error", "hint"} on stdout (and still exit 2)."""
    def run(args):
        try:
            return func(args)
        except StudioError as e:
            if getattr(args, "json", False):
                print(json.dumps({"error": e.message, "hint": e.hint}, ensure_ascii=False))
                return 2
            raise
    return run


class _Progress:
    """tqdm on stderr, shown only when the work lasts more than a second."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=sys.stderr, unit="img", delay=1.0, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@_json_errors
def cmd_import(args) -> int:
    from core.importers import sniff

    fmt, implied = sniff(args.src, args.task)  # SRC unusable -> StudioError -> exit 2, before anything is created
    into = Path(args.into)
    created = False
    if (into / META_FILE).exists():
        ds = Dataset.open(into)
        if args.task and args.task != ds.task.name:
            raise StudioError(f"{into} is a {ds.task.name} dataset, not {args.task}.",
                              "Drop --task, or import into another folder.")
        if args.schema:
            raise StudioError(f"{into} already exists; its schema is in its dataset.json.",
                              "Drop --schema, or import into a new folder.")
    else:
        task = args.task or implied
        if not task:
            raise StudioError(f"Cannot tell the task of {Path(args.src).name}: it holds images only.",
                              "Say which task the new dataset is for: " +
                              " or ".join(f"--task {n}" for n in _task_names()) + ".")
        config = {"schema": read_schema(args.schema)} if args.schema else None
        ds, created = Dataset.create(into, task, name=args.name, config=config), True
    progress = _Progress()
    try:
        report = ds.import_source(args.src, progress=progress)
    except StudioError:
        if created and not ds.records():
            shutil.rmtree(ds.path, ignore_errors=True)  # leave no empty dataset behind a failed import
        raise
    finally:
        progress.close()
    report["dataset"] = str(ds.path)
    report["task"] = ds.task.name
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    from core.importers import item_name, plural, summary_lines

    print(f"{ds.path} [{ds.task.name}] from {report['source']} ({report['format']}); "
          f"the dataset now has {plural(report['total'], 'record')}.")
    for line in summary_lines(report):
        print(line)
    if report.get("hint"):
        print(report["hint"])
    if report["skipped"]:
        print(f"Skipped {plural(len(report['skipped']), 'item')}:")
        for s in report["skipped"]:
            print(f"  {item_name(s)} ({s.get('image_path') or '-'}): {s['reason']}")
    if report["warnings"]:
        print(f"{plural(len(report['warnings']), 'warning')}:")
        for w in report["warnings"][:50]:
            print(f"  {item_name(w)} ({w.get('image_path') or '-'}): {w['reason']}")
        if len(report["warnings"]) > 50:
            print(f"  ... and {len(report['warnings']) - 50} more (use --json).")
    return 0


@_json_errors
def cmd_validate(args) -> int:
    ds = Dataset.open(args.dataset_dir)
    progress = _Progress()
    try:
        report = ds.validate(progress=progress, near_threshold=args.near)
    finally:
        progress.close()
    print(json.dumps(report, ensure_ascii=False) if args.json else format_report(report))
    return 1 if report["errors"] else 0  # so a script or CI step fails on a broken dataset


@_json_errors
def cmd_export(args) -> int:
    ds = Dataset.open(args.dataset_dir)
    result = ds.export(args.format, args.out, overwrite=args.force)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"Exported {result['records']} record(s) as {args.format} to {result['out']}.")
    for s in result["skipped"]:
        print(f"  skipped {s['record']}: {s['reason']}")
    return 0


@_json_errors
def cmd_split(args) -> int:
    ds = Dataset.open(args.dataset_dir)
    counts = ds.split(seed=args.seed, val_fraction=args.val, test_fraction=args.test,
                      min_records=args.min_records)
    if args.json:
        print(json.dumps({"split": counts, "seed": args.seed}))
    else:
        print("Split (seed {}): ".format(args.seed) + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0



def _open_dataset(ref: str) -> Dataset:
    """A dataset folder, or the name of one in the workspace's datasets/."""
    from core import workspace

    p = Path(ref)
    if not (p / META_FILE).is_file() and (workspace.datasets_dir() / ref / META_FILE).is_file():
        p = workspace.datasets_dir() / ref
    return Dataset.open(p)


@_json_errors
def cmd_prelabel(args) -> int:
    from core import prelabel
    from core.suggestions import LOW_CONFIDENCE

    if args.batch_size < 1:
        raise StudioError("--batch-size must be at least 1.", "e.g. --batch-size 8")
    ds = _open_dataset(args.dataset_dir)
    bar = None

    def progress(state):
        nonlocal bar
        if args.json or state["status"] != "running":
            return
        if bar is None:
            from tqdm import tqdm
            bar = tqdm(total=state["total"], initial=state["done"], file=sys.stderr, unit="img", leave=False)
        bar.update(state["done"] - bar.n)

    try:
        state = prelabel.run_pass(ds, args.run, model=args.model, which=args.which, batch_size=args.batch_size,
                                  device=args.device, progress=progress)
    except KeyboardInterrupt:
        state = prelabel.status(ds)
        print(f"Stopped after {state.get('done', 0)} of {state.get('total', '?')} records; what was answered "
              "is kept. Run the same command again to go on.", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(state, ensure_ascii=False))
        return 0
    from core.importers import plural
    from core.suggestions import doubtful

    recs = [r for r in ds.records() if (r.get("suggestions") or {}).get(state["run"])]
    per_field = {f.name: sum(1 for r in recs if f.name in r["suggestions"][state["run"]]["fields"])
                 for f in ds.task.fields}
    low = sum(len(doubtful(r["suggestions"][state["run"]].get("confidence") or {})) for r in recs)
    fresh = state["done"] - state.get("resumed_at", 0)
    print(f"{ds.name}: {state['run']} answered {plural(fresh, 'record')}"
          + (f" (going on after {state['resumed_at']} answered before)" if state.get("resumed_at") else "")
          + f"; {state['done']} of {state['total']} unlabeled records have its answer.")
    print("Suggested fields: " + ", ".join(f"{k} {v}" for k, v in per_field.items())
          + f"; {plural(low, 'field')} below confidence {LOW_CONFIDENCE}.")
    for key, text in (("no_fields", "answers parsed into no field"), ("failed", "images could not be read"),
                      ("labeled_meanwhile", "records were labeled meanwhile (left as they are)")):
        if state.get(key):
            print(f"{state[key]} {text}.")
    print("Review them in the Annotate tab (queue: suggested); nothing is a label until accepted.")
    return 0
