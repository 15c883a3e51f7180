"""Datasets tab: create / import / open, counts by status and split, the validation report with a
link to each bad record, re-split with a seed, export."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import gradio as gr

from core.dataset import Dataset
from core.errors import StudioError
from core.names import is_valid_name
from core.tasks import all_tasks
from studio.common import badge, dataset_choices, esc, ui_guard, open_dataset

REPORT_HEADERS = ["severity", "record", "problem", "details"]
SETTING_FILE_TYPES = [".json"]  # a task's per-dataset settings are JSON documents (read_setting), not label files


# ---------------------------------------------------------------- pure handlers (unit-tested)
def overview_html(ds: Dataset | None) -> str:
    if ds is None:
        return '<div class="ts-empty">No dataset open. Create or import one below.</div>'
    c = ds.counts()
    st, sp, total = c["status"], c["split"], c["total"]
    done = st["labeled"] + st["reviewed"]
    pct = 100 * done / total if total else 0
    cards = [("Images", total, ""), ("Labeled", st["labeled"], "ok"), ("Reviewed", st["reviewed"], "info"),
             ("Unlabeled", st["unlabeled"], "warn")] + ([("Suggested", st["suggested"], "warn")] if st.get("suggested") else [])
    splits = " ".join(badge(f"{k} {v}", "neutral") for k, v in sp.items())
    return (f'<div class="ts-overview"><div class="ts-ds-title">{esc(ds.name)} {badge(ds.task.name, "info")}'
            f'<span class="ts-muted"> · {esc(ds.task.title)}</span></div>'
            '<div class="ts-cards">' + "".join(
                f'<div class="ts-card ts-card-{k}"><div class="ts-card-n">{n}</div><div class="ts-card-l">{lab}</div></div>'
                for lab, n, k in cards) + "</div>"
            f'<div class="ts-progress"><div class="ts-progress-bar" style="width:{pct:.1f}%"></div></div>'
            f'<div class="ts-muted">{pct:.0f}% labeled · splits: {splits}</div></div>')


def export_formats(task: str | None) -> list[tuple[str, str]]:
    """The export formats that fit a dataset's task (its own writable formats, then hf): a dataset is
    never offered another task's format."""
    from core.exporters import format_titles

    return format_titles(task)


def import_help() -> str:
    """What the import box takes, from the installed tasks' formats (Task.formats)."""
    from core.label_formats import formats

    seeds = "; ".join(f"{esc(f.title)} (`{'`, `'.join(f.files or f.suffixes)}`, {esc(t)})" for t, f in formats())
    return ("#### Import into the open dataset\nA folder of images, a zip, or a label file of the dataset's task"
            + (f": {seeds}." if seeds else ".") + " Bad items are skipped with a reason.")


PREVIEW_MAX = 12


def preview_items(ds: Dataset | None) -> list[tuple[str, str]]:
    """A first look at the dataset: up to PREVIEW_MAX images with their status."""
    if ds is None:
        return []
    out = []
    for r in ds.records()[:PREVIEW_MAX]:
        try:
            out.append((str(ds.image_path(r)), f"{r.get('status', 'unlabeled')} · {str(r.get('id'))[:8]}"))
        except StudioError:
            continue
    return out


def task_settings(task: str | None) -> dict:
    """The per-dataset settings a task asks for at creation (Task.settings), e.g. json's schema."""
    t = all_tasks().get(task or "")
    return dict(getattr(t, "settings", None) or {})


def read_setting(text: str | None, upload: str | None, what: str) -> object:
    """A setting given as pasted JSON or an uploaded .json file (the upload wins)."""
    source = "the uploaded file"
    if upload:
        try:
            text = Path(upload).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise StudioError(f"Cannot read the uploaded {what}: {e}.", "Upload a UTF-8 .json file.") from e
    else:
        source = "the pasted text"
    if not (text or "").strip():
        raise StudioError(f"This task needs a {what}.", f"Paste the {what} as JSON, or upload a .json file.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StudioError(f"The {what} in {source} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.",
                          "Fix it (a missing comma or bracket?) and create again.") from e


def create_dataset(datasets_dir: Path, name: str, task: str, setting_text: str | None = None,
                   setting_upload: str | None = None) -> Dataset:
    name = (name or "").strip()
    if not is_valid_name(name):
        raise StudioError(f"'{name}' is not a usable dataset name.",
                          "Use letters, digits, '-', '_' or '.', starting with a letter or digit.")
    config = {key: read_setting(setting_text, setting_upload, key) for key in task_settings(task)}
    return Dataset.create(Path(datasets_dir) / name, task, name=name, config=config or None)


def import_into(ds: Dataset, files: list[str] | None, server_path: str | None, allow_server_path: bool,
                progress=None) -> str:
    """Imports every source; the outcome in Markdown (counts, the split, each skipped item by its
    1-based item or line number). progress(done, total, source name) is called per image."""
    from core.importers import item_name, plural, summary_lines

    sources = [str(f) for f in (files or [])]
    if server_path and server_path.strip():
        if not allow_server_path:
            raise StudioError("Importing from a server folder is disabled in this demo.",
                              "Upload the files (a zip, a label file or images) instead.")
        sources.append(server_path.strip())
    if not sources:
        raise StudioError("Nothing to import.", "Upload a zip, a label file or images, or give a folder on the server.")
    totals = {"imported": 0, "labeled": 0, "labels_added": 0, "duplicates": 0, "ignored": 0}
    skipped, warnings, hints, split, ignored = [], [], [], None, []
    for src in sources:
        name = Path(src).name
        rep = ds.import_source(src, progress=(lambda d, t, n=name: progress(d, t, n)) if progress else None)
        for k in totals:
            totals[k] += rep.get(k, 0)
        skipped += [{**s, "source": name} for s in rep.get("skipped", [])]
        warnings += rep.get("warnings", [])
        hints += [rep["hint"]] if rep.get("hint") else []
        ignored += rep.get("ignored_files") or []
        split = rep.get("split") or split
    head = summary_lines({**totals, "split": split, "ignored_files": ignored})
    blocks = ["<br>".join([f"**{head[0]}**", *head[1:], *(f"<b>What to do:</b> {esc(h)}" for h in hints)])]
    many = len(sources) > 1
    for title, entries in ((f"{plural(len(skipped), 'item')} skipped:", skipped),
                           (f"{plural(len(warnings), 'warning')}:", warnings)):
        if not entries:
            continue
        rows = [f"- {esc(item_name(s))}" + (f" of `{esc(s['source'])}`" if many and s.get("source")
                                            and s["source"] != item_name(s) else "")
                + (f" (`{esc(s['image_path'])}`)" if s.get("image_path") and s["image_path"] != s.get("record") else "")
                + f": {esc(s.get('reason'))}" for s in entries[:50]]
        if len(entries) > 50:
            rows.append(f"- … and {len(entries) - 50} more")
        blocks.append(f"**{title}**\n\n" + "\n".join(rows))
    return "\n\n".join(blocks)


def report_rows(ds: Dataset) -> tuple[str, list[list]]:
    rep = ds.validate()
    issues = sorted(rep["issues"], key=lambda i: (i["severity"] != "error", str(i["record"])))
    rows = [[i["severity"], str(i["record"]), i["code"].replace("_", " "), i["reason"]] for i in issues]
    from core.importers import plural

    head = (f"**{plural(rep['records'], 'record')}**, {plural(rep['images_readable'], 'readable image')} — "
            f"{badge(plural(rep['errors'], 'error'), 'err' if rep['errors'] else 'ok')} "
            f"{badge(plural(rep['warnings'], 'warning'), 'warn' if rep['warnings'] else 'ok')}"
            + ("" if rows else " · No problems found.")
            + ("<br><span class='ts-muted'>Click a row to open that record in Annotate.</span>" if rows else ""))
    from core.suggestions import format_stats

    found = format_stats(rep.get("suggestions") or {})  # what each run's suggestions were worth
    if found:
        head += "\n\n" + "<br>".join(esc(line.strip()) for line in found)
    return head, rows


def export_dataset(ds: Dataset, fmt: str, exports_dir: Path) -> tuple[str, str]:
    """Exports into workspace/exports/<name>-<fmt>-<time>/ and zips it; returns (summary, zip path)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(exports_dir) / f"{ds.name}-{fmt}-{stamp}"
    res = ds.export(fmt, out)
    folder = Path(res["out"]) if Path(res["out"]).is_dir() else Path(res["out"]).parent
    archive = shutil.make_archive(str(folder), "zip", root_dir=folder)
    text = f"Exported **{res['records']}** record(s) to `{esc(folder)}`."
    if res.get("skipped"):
        text += f" {len(res['skipped'])} skipped: " + "; ".join(
            f"`{esc(s['record'])}` ({esc(s['reason'])})" for s in res["skipped"][:10])
    return text, archive


# ---------------------------------------------------------------- UI
def build(state, shared: dict) -> dict:
    ds_dd = shared["dataset"]
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            overview = gr.HTML(elem_id="ds-overview")
            preview = gr.Gallery(label="Images (the first 12)", columns=6, height=330, object_fit="cover",
                                 elem_id="ds-preview", interactive=False, show_label=True)
        with gr.Column(scale=2, elem_classes="ts-panel"):
            gr.Markdown("#### New dataset")
            new_name = gr.Textbox(label="Name", placeholder="e.g. my-keys", max_lines=1)
            tasks = all_tasks()
            plain = [n for n in tasks if not task_settings(n)] or list(tasks)
            new_task = gr.Radio([(t.title, n) for n, t in tasks.items()], value=plain[0] if plain else None,
                                label="Task", elem_id="ds-new-task")
            with gr.Column(visible=False) as setting_box:
                # the code box's label is a short tab on its border: the setting's description goes above
                setting_help = gr.Markdown(elem_id="ds-schema-help", elem_classes="ts-muted")
                setting_text = gr.Code(language="json", lines=8, label="Schema", interactive=True,
                                       elem_id="ds-schema")
                setting_file = gr.File(label="…or upload it (.json)", file_types=SETTING_FILE_TYPES, type="filepath",
                                       elem_id="ds-schema-file")  # its own height: 90 px cut "Click to Upload"
            create_btn = gr.Button("Create dataset", variant="primary", elem_id="ds-create")
    with gr.Row(equal_height=False):
        with gr.Column(elem_classes="ts-panel"):
            gr.Markdown(import_help(), elem_id="ds-import-help")
            # no file_types: Gradio's own refusal of a .txt ("Invalid file type") left the upload empty, and
            # Import then said "Nothing to import"; the importer names the file and what it takes instead
            files = gr.File(label="Upload", file_count="multiple", type="filepath", elem_id="ds-files")
            server_path = gr.Textbox(label="…or a folder / file on this machine", max_lines=1,
                                     visible=not state.demo_mode, placeholder="/data/screenshots")
            import_btn = gr.Button("Import", elem_id="ds-import")
            import_out = gr.Markdown(elem_id="ds-import-out")
        with gr.Column(elem_classes="ts-panel"):
            gr.Markdown("#### Split\nLabeled records are shuffled with the seed; unlabeled ones get no split.")
            with gr.Row():
                seed = gr.Number(42, label="Seed", precision=0, minimum=0)
                val_frac = gr.Slider(0, 0.5, 0.1, step=0.05, label="Validation share")
                test_frac = gr.Slider(0, 0.5, 0.0, step=0.05, label="Test share")
            split_btn = gr.Button("Re-split", elem_id="ds-split")
            gr.Markdown("#### Export")
            fmt = gr.Dropdown(export_formats(None), value="hf", label="Format", elem_id="ds-export-format")
            export_btn = gr.Button("Export labeled records", elem_id="ds-export")
            export_out = gr.Markdown()
            export_file = gr.File(label="Download", visible=False)
    with gr.Column(elem_classes="ts-panel"):
        with gr.Row():
            gr.Markdown("#### Validation report")
            validate_btn = gr.Button("Check dataset", size="sm", elem_id="ds-validate", scale=0)
        report_head = gr.Markdown()
        report = gr.Dataframe(headers=REPORT_HEADERS, value=[], interactive=False, wrap=True,
                              column_widths=["9%", "16%", "15%", "60%"], elem_id="ds-report", max_height=420)

    def refresh(path):
        try:
            return overview_html(open_dataset(state, path) if path else None)
        except StudioError as e:
            return f'<div class="ts-empty">{esc(e.message)}</div>'

    @ui_guard
    def on_create(name, task, text, upload):
        ds = create_dataset(state.datasets_dir, name, task, text, upload)
        gr.Info(f"Created dataset {ds.name}.")
        return gr.update(choices=dataset_choices(state), value=str(ds.path)), ""

    def on_task(task):
        settings = task_settings(task)
        text = next(iter(settings.values()), "")
        short = text.split(":")[0].strip() if ":" in text else next(iter(settings), "setting")
        return (gr.update(visible=bool(settings)), gr.update(label=short[:1].upper() + short[1:]),
                text[:1].upper() + text[1:])

    @ui_guard
    def on_import(path, up, server, progress=gr.Progress()):
        ds = open_dataset(state, path)
        text = import_into(ds, up, server, allow_server_path=not state.demo_mode,
                           progress=lambda d, t, n: progress((d, t), desc=f"importing {n}", unit="images"))
        return text, overview_html(ds), None, preview_items(ds)

    @ui_guard
    def on_validate(path):
        return report_rows(open_dataset(state, path))

    @ui_guard
    def on_split(path, s, v, t):
        ds = open_dataset(state, path)
        counts = ds.split(seed=int(s or 0), val_fraction=float(v), test_fraction=float(t))
        gr.Info("Split: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
        return overview_html(ds)

    @ui_guard
    def on_export(path, f):
        text, archive = export_dataset(open_dataset(state, path), f, state.workspace / "exports")
        return text, gr.update(value=archive, visible=True)

    def on_dataset(path):
        try:
            ds = open_dataset(state, path) if path else None
        except StudioError:
            ds = None
        return (refresh(path), gr.update(choices=export_formats(ds.task.name if ds else None), value="hf"),
                preview_items(ds))

    ds_dd.change(on_dataset, ds_dd, [overview, fmt, preview])
    create_btn.click(on_create, [new_name, new_task, setting_text, setting_file], [ds_dd, new_name])
    new_task.change(on_task, new_task, [setting_box, setting_text, setting_help])
    import_btn.click(on_import, [ds_dd, files, server_path], [import_out, overview, files, preview])
    validate_btn.click(on_validate, ds_dd, [report_head, report])
    split_btn.click(on_split, [ds_dd, seed, val_frac, test_frac], overview)
    export_btn.click(on_export, [ds_dd, fmt], [export_out, export_file])
    return {"overview": overview, "report": report, "refresh": refresh}
