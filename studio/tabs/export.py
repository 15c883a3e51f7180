"""Export tab: a finished run as its PEFT adapter, merged 16-bit weights, or GGUF for llama.cpp /
Ollama, through core.export.export_run, into RUN/export/<folder> (a free name is proposed, so an
export can be repeated); the result is a verdict first, a zip to download, then the details."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import gradio as gr

from core.errors import StudioError
from studio.common import esc, run_buttons, ui_guard

FORMATS = [("LoRA adapter (PEFT)", "adapter"), ("Merged 16-bit model", "merged"), ("GGUF + vision projector", "gguf")]
VERDICT_KIND = {"verified": "ok", "written": "ok", "differs": "warn", "not_verified": "warn"}
STORED = (".safetensors", ".gguf", ".bin", ".pt", ".zip")  # already dense: stored, not deflated
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


def formats_for(run: str | None) -> tuple[list[tuple[str, str]], str, str]:
    """(format choices, default, note) for a run: a LoRA run exports its adapter by default; a full
    fine-tune (RUN/model/, no adapter) offers merged and GGUF only, merged by default."""
    from core.infer import resolve_run_dir, run_weights

    if not run:
        return FORMATS, "adapter", "Pick a finished run."
    try:
        _, has_adapter = run_weights(run)
    except StudioError as e:
        return FORMATS, "adapter", f"{e.message} {e.hint}"
    name = resolve_run_dir(run).name
    if has_adapter:
        return FORMATS, "adapter", f"`{name}` is a LoRA run: its adapter, or the base merged with it."
    return FORMATS[1:], "merged", (f"`{name}` is a full fine-tune: every weight was trained, so there is no "
                                   "adapter; export the merged model or GGUF.")


def free_folder(run: str | None, fmt: str, quant: str | None = None) -> str:
    """The first unused folder name under RUN/export/: merged, merged-2, merged-3, …"""
    from core.infer import resolve_run_dir

    base = f"gguf-{quant or 'f16'}" if fmt == "gguf" else fmt
    if not run:
        return base
    try:
        root = resolve_run_dir(run) / "export"
    except StudioError:
        return base
    name, k = base, 1
    while (root / name).exists() or (root / f"{name}.zip").exists():
        k += 1
        name = f"{base}-{k}"
    return name


def gguf_note(fmt: str) -> str:
    """Said once, before the export runs: without llama-cpp-python a GGUF export cannot be verified,
    and how to install it (after the export the verdict says it instead: gguf_controls)."""
    from core.export_gguf import INSTALL_HINT, llama_cpp_available

    if fmt != "gguf":
        return ""
    why = llama_cpp_available()
    if why is None:
        return ('<div class="ts-msg ts-msg-ok">llama-cpp-python is installed: the export answers sample images '
                'with llama.cpp and compares them with transformers.</div>')
    return ('<div class="ts-msg ts-msg-warn"><b>Will not be verified:</b> llama-cpp-python is not installed here, '
            "so verification is off: the GGUF files are written and read back, but nothing answers with them. "
            f"{esc(INSTALL_HINT)}</div>")


def gguf_controls(fmt: str) -> dict:
    """The GGUF-only controls for a format: {"visible", "verify" (ticked only when the checker is
    installed), "verify_interactive", "note"}."""
    from core.export_gguf import llama_cpp_available

    gg = fmt == "gguf"
    can = gg and llama_cpp_available() is None
    return {"visible": gg, "verify": can, "verify_interactive": can, "note": gguf_note(fmt)}


def verdict_html(summary: dict) -> str:
    v = summary.get("verdict") or {}
    kind = VERDICT_KIND.get(v.get("status"), "warn")
    return (f'<div class="ts-msg ts-msg-{kind}" id="export-verdict-box">{esc(v.get("text", ""))}'
            f'<br><span class="ts-muted">Folder: <code>{esc(summary.get("out_dir"))}</code></span></div>')


def compact(summary: dict) -> dict:
    """The summary without the token-id lists and log-probabilities of the verification (they stay
    in export_summary.json): what a person reads, not 3,600 px of numbers."""
    out = json.loads(json.dumps(summary, default=str))
    for row in (out.get("verification") or {}).get("answers") or []:
        for key in ("llama_cpp_tokens", "transformers_tokens"):
            row[key] = f"{len(row.get(key) or [])} tokens"
    return out


def zip_folder(folder: Path) -> Path:
    """FOLDER.zip next to it (weights stored, text deflated), for the download button."""
    folder = Path(folder)
    dest = folder.with_name(folder.name + ".zip")
    tmp = dest.with_name(f".{dest.name}.partial")
    with zipfile.ZipFile(tmp, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                method = zipfile.ZIP_STORED if p.suffix in STORED else zipfile.ZIP_DEFLATED
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}", compress_type=method)
    tmp.replace(dest)
    return dest


def do_export(run: str | None, fmt: str, quant: str | None, verify: bool, folder: str | None = None,
              progress=None) -> tuple[dict, Path]:
    """Runs core.export.export_run into RUN/export/<folder>; (summary, zip of the export)."""
    from core.export import export_run
    from core.infer import resolve_run_dir

    if not run:
        raise StudioError("No run picked.", "Pick a finished run.")
    folder = (folder or "").strip() or free_folder(run, fmt, quant)
    if not re.fullmatch(NAME_RE, folder):
        raise StudioError(f"'{folder}' is not a usable folder name.",
                          "Use letters, digits, '-', '_' or '.'; the export goes to RUN/export/<name>.")
    out = resolve_run_dir(run) / "export" / folder
    if out.exists():
        raise StudioError(f"RUN/export/{folder} already exists.", f"Use another folder name, e.g. "
                          f"{free_folder(run, fmt, quant)}.")
    res = export_run(run, fmt, out, quant=quant if fmt == "gguf" else None, verify=bool(verify), progress=progress)
    return res, zip_folder(Path(res["out_dir"]))


def build(state, shared: dict) -> dict:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, elem_classes="ts-panel"):  # wide enough for a whole run id
            run = gr.Dropdown([], label="Run", elem_id="export-run")
            fmt = gr.Radio(FORMATS, value="adapter", label="Format", elem_id="export-format")
            quant = gr.Dropdown(["f16", "q8_0", "q4_k_m"], value="f16", label="GGUF quantization",
                                info="Text model only; the vision projector stays f16.", visible=False)
            verify = gr.Checkbox(False, label="Verify the GGUF against the merged model (llama.cpp answers sample "
                                 "images)", visible=False, elem_id="export-verify")
            note = gr.HTML("", elem_id="export-gguf-note", padding=False, container=False)
            folder = gr.Textbox(label="Folder (under RUN/export/)", max_lines=1, elem_id="export-folder",
                                info="A free name is proposed, so exporting again never overwrites.")
            on_refresh, go = run_buttons(state, run, "export", "Export", dataset=shared["dataset"])
        with gr.Column(scale=5, elem_classes="ts-panel"):
            where = gr.Markdown("Pick a finished run.", elem_id="export-where")
            verdict = gr.HTML("", elem_id="export-verdict")
            # always shown (empty until an export): a component that starts hidden loses its elem_id
            download = gr.File(label="Download (zip)", elem_id="export-download", interactive=False)
            with gr.Accordion("Details (export_summary.json)", open=False):
                summary = gr.Code(language="json", label="Export summary", interactive=False, lines=14,
                                  max_lines=30, elem_id="export-summary")
    from studio import serve_panel  # serving a run over the API: its own module

    serve = serve_panel.build(state)

    @ui_guard
    def on_go(r, f, q, v, name, progress=gr.Progress()):
        from core.export import STEPS

        def report(frac, msg):
            k = round((frac or 0) * STEPS.get(f, 1))
            progress(frac if frac is not None else 0, desc=f"step {max(k, 1)} of {STEPS.get(f, 1)}: {msg}")

        # a sync handler: Gradio runs it in a worker thread, so the page stays live while it works
        res, archive = do_export(r, f, q, v, name, progress=report)
        # the verdict says what was checked (and how to install the checker): the note before it goes
        return {where: f"Exported `{res['run']}` as **{res['format']}**.", verdict: verdict_html(res), note: "",
                download: str(archive),
                summary: json.dumps(compact(res), indent=2), folder: free_folder(r, f, q)}

    def on_run(r, f, q):
        choices, value, text = formats_for(r)
        # another run: nothing of the previous run's export stays on screen
        return {fmt: gr.update(choices=choices, value=value), where: text, verdict: "", summary: "",
                download: None, folder: free_folder(r, value, q)}

    def on_format(r, f, q):
        c = gguf_controls(f)
        return {quant: gr.update(visible=c["visible"]), note: c["note"], folder: free_folder(r, f, q),
                verify: gr.update(visible=c["visible"], value=c["verify"], interactive=c["verify_interactive"])}

    run.change(on_run, [run, fmt, quant], [fmt, where, verdict, summary, download, folder])
    fmt.change(on_format, [run, fmt, quant], [quant, verify, note, folder])
    quant.change(lambda r, f, q: free_folder(r, f, q), [run, fmt, quant], folder)
    go.click(on_go, [run, fmt, quant, verify, folder], [where, verdict, note, download, summary, folder],
             concurrency_limit=1, concurrency_id="models")
    return {"refresh": on_refresh, "run": run, "serve": serve}
