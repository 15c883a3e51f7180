"""What the Annotate tab keeps in the browser so a reload (or a closed tab) loses no typing: a draft
per record, in localStorage (gr.BrowserState), written on every edit by the page itself (no server
round trip, so typing a second before a reload is in it), restored when the record is opened again.

A draft is {"stamp": the record's `updated` stamp the typing is based on, "values": the editor
components' values, "at": ms}. It is restored only while the record still carries that stamp: a
save by someone else (a new stamp) makes it stale, so it never lands over their newer label, and a
draft is keyed by dataset and record, so it never lands on another record. A save of this editor
moves its draft to the new stamp (the draft holds what was saved and anything typed since)."""
from __future__ import annotations

import json

STORAGE_KEY = "trinity-annotate-drafts"
MAX_DRAFTS = 20  # the newest are kept: a safety net between saves, sent with each annotate event


def key(path: str, rid: str) -> str:
    return f"{path}|{rid}"


def held(path: str, rid: str, updated: str | None, after: str | None = None) -> str:
    """The hidden #ann-held value: which record (and at which stamp) the editor's typing is based on;
    `after` is the stamp a save of this editor replaced, so the page moves the draft along."""
    return json.dumps({"path": path, "id": rid, "updated": updated or "", "from": after or ""})


def draft_values(drafts, path: str, rid: str, stamp: str | None, n: int) -> list | None:
    """The editor values of the record's draft, or None when there is none for this stamp."""
    d = (drafts or {}).get(key(path, rid)) if isinstance(drafts, dict) else None
    if not isinstance(d, dict) or not stamp or d.get("stamp") != stamp:
        return None
    values = d.get("values")
    return values if isinstance(values, list) and len(values) == n else None


def without(drafts, path: str, rid: str) -> dict:
    return {k: v for k, v in (drafts or {}).items() if k != key(path, rid)} if isinstance(drafts, dict) else {}


# (drafts, holding, held, ...editor values) => [drafts]: on every edit. window.__tsHeld remembers each
# record's base as the server last said it, so a late answer about another record cannot mislabel one.
WRITE_JS = """
(drafts, holding, held, ...values) => {
  const m = (window.__tsHeld = window.__tsHeld || {});
  try { const h = JSON.parse(held || '{}'); if (h.id && h.id === holding) m[h.id] = h; } catch (e) {}
  const base = m[holding];
  if (!holding || !base || !base.updated) return [drafts];
  const d = Object.assign({}, drafts || {});
  d[base.path + '|' + holding] = {stamp: base.updated, values: values, at: Date.now()};
  const keys = Object.keys(d).sort((a, b) => (d[b].at || 0) - (d[a].at || 0));
  for (const k of keys.slice(%d)) delete d[k];
  return [d];
}
""" % MAX_DRAFTS

# (drafts, holding, held) => [drafts]: after an answer that set #ann-held (a render or a save). A save
# of this editor ("from" = the draft's stamp) moves the draft to the new stamp.
MOVE_JS = """
(drafts, holding, held) => {
  let h = {};
  try { h = JSON.parse(held || '{}'); } catch (e) { return [drafts]; }
  if (!h.id || h.id !== holding) return [drafts];
  const m = (window.__tsHeld = window.__tsHeld || {});
  m[h.id] = h;
  const k = h.path + '|' + h.id;
  const d = drafts || {};
  if (h.from && d[k] && d[k].stamp === h.from) {
    return [Object.assign({}, d, {[k]: Object.assign({}, d[k], {stamp: h.updated})})];
  }
  return [drafts];
}
"""


def secret(workspace) -> str:
    """The key the browser encrypts its drafts with (gr.BrowserState), kept in the workspace so
    drafts written before a restart of the studio can still be read after it."""
    import os
    import secrets
    from pathlib import Path

    path = Path(workspace) / ".draft-key"
    for _ in range(2):
        try:
            text = path.read_text(encoding="utf-8").strip()
            if text:
                return text
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue  # another process made it meanwhile: read theirs
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(16))
    return path.read_text(encoding="utf-8").strip()
