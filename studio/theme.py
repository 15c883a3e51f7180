"""Look and feel: a Gradio theme using only fonts bundled with Gradio (the page must render
offline), the studio's CSS, and the keyboard shortcuts of the Annotate tab."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

CSS_PATH = Path(__file__).with_name("studio.css")


def theme() -> gr.themes.Base:
    return gr.themes.Default(
        primary_hue="indigo", secondary_hue="violet", neutral_hue="slate", radius_size="md",
        font=[gr.themes.LocalFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"],
    ).set(block_title_text_weight="600", button_primary_background_fill="*primary_600",
          button_primary_background_fill_hover="*primary_700")


def css() -> str:
    return CSS_PATH.read_text(encoding="utf-8")


def set_param_js(key: str, fixed: str | None = None, ready: bool = False) -> str:
    """A js= handler that writes its input (or a fixed value) into the address as ?key=value, so a
    reload or a shared link opens the same dataset, run and tab; a path keeps its last part (the
    name). Until the page's load event has read the address (window.__tsReady), a fixed value is not
    written: the first tab's select fires on its own at start-up and would overwrite ?tab=.
    ready=True marks that moment. Self-contained: it may run before the page's own script has."""
    arg, val = ("", repr(fixed)) if fixed is not None else ("value", "value")
    wait = "if (!window.__tsReady) return []; " if fixed is not None else ""
    mark = "window.__tsReady = true; " if ready else ""
    return (f"({arg}) => {{ {wait}{mark}const u = new URL(window.location.href); "
            f"const name = {val} == null ? '' : String({val}).replace(/\\/+$/, '').split('/').pop(); "
            f"if (name) u.searchParams.set({key!r}, name); else u.searchParams.delete({key!r}); "
            "window.history.replaceState(window.history.state, '', u); return []; }")


# Runs once when the page loads. Shortcuts click the Annotate buttons, so they do exactly what a
# click does (autosave included); Ctrl/Cmd+S saves even while typing in the SQL editor.
SHORTCUTS_JS = """
() => {
  if (window.__tsShortcuts) return;
  window.__tsShortcuts = true;
  const click = (id) => { const b = document.getElementById(id); if (b && b.offsetParent !== null) { b.click(); return true; } return false; };
  document.addEventListener('keydown', (e) => {
    const k = e.key.toLowerCase();
    let id = null;
    if ((e.ctrlKey || e.metaKey) && k === 's') id = 'ann-save';
    else if ((e.ctrlKey || e.metaKey) && k === 'enter') id = 'ann-save-next';
    else if (e.altKey && k === 'arrowright') id = 'ann-next';
    else if (e.altKey && k === 'arrowleft') id = 'ann-prev';
    else if (e.altKey && k === 'u') id = 'ann-next-unlabeled';
    else if (e.altKey && k === 'a') id = 'ann-accept';
    if (id && click(id)) { e.preventDefault(); e.stopPropagation(); }
  }, true);
}
"""
