"""The Annotate tab's model-assisted labeling without Gradio: what the editor shows of a suggestion
(the run, the doubtful fields, later which fields are the person's), the queue orders, the pass's
progress line and the offer to train again. The rules live in core (core/suggestions.py,
core/prelabel.py, core/label_loop.py); this module only words them."""
from __future__ import annotations

from itertools import combinations

from core import suggestions as S
from studio.common import badge, esc

ORDER_DATASET, ORDER_CONFIDENCE, DISAGREE = "dataset", "confidence", "disagreement:"


def order_choices(records: list[dict]) -> list[tuple[str, str]]:
    """The queue orders this dataset supports: as stored, least sure first, and one "runs disagree"
    order per pair of the last three runs that answered it."""
    out = [("dataset order", ORDER_DATASET)]
    runs = S.runs_with_suggestions(records)
    if runs:
        out.append(("lowest confidence first", ORDER_CONFIDENCE))
    for a, b in combinations(runs[-3:], 2):
        out.append((f"runs disagree first: {a} vs {b}", f"{DISAGREE}{a}|{b}"))
    return out


def ordered(records: list[dict], order: str | None) -> list[dict]:
    """records in the chosen queue order (an order whose runs are gone falls back to the stored one)."""
    if order and order.startswith(DISAGREE):
        a, _, b = order[len(DISAGREE):].partition("|")
        return S.order(records, "disagreement", (a, b)) if a and b else list(records)
    return S.order(records, ORDER_CONFIDENCE if order == ORDER_CONFIDENCE else "dataset")


def mark(record: dict) -> str:
    """The gallery's mark: ✓ labeled, ◐ a suggestion waits, ○ nothing yet."""
    st = record.get("status")
    return "✓" if st in S.LABELED else "◐" if st == "suggested" else "○"


def needs_review(record: dict) -> bool:
    return record.get("status") in ("unlabeled", "suggested")


def next_to_review(records: list[dict], current: str | None) -> str | None:
    """The first record after current (in queue order, wrapping) without a label; None when none is left."""
    ids = [r["id"] for r in records]
    start = ids.index(current) + 1 if current in ids else 0
    for r in records[start:] + records[:start]:
        if needs_review(r) and r["id"] != current:
            return r["id"]
    return None


def field_note(name: str, conf: dict, edited: list[str]) -> str:
    """The suffix of a field's label: the model's doubt, or that the value is the person's."""
    if name in edited:
        return " ✎ yours"
    if name in conf:
        return f" · ⚠ check (model {conf[name]:.2f})" if conf[name] < S.LOW_CONFIDENCE else f" · model {conf[name]:.2f}"
    return ""


def suggestion_html(task, record: dict, shown: str | None, conf: dict) -> str:
    """The box under the record's header: a waiting suggestion (by whom, how sure, what to check, how
    to accept it) or, for a label made from one, which fields the person kept and which are theirs."""
    labels = {f.name: f.label for f in task.fields}
    if shown:
        doubt = S.doubtful(conf)
        chips = " ".join(badge(f"{labels.get(n, n)} {p:.2f}", "warn" if n in doubt else "ok") for n, p in conf.items())
        check = (f' <span class="ts-sug-doubt">Check {esc(", ".join(labels.get(n, n) for n in doubt))}: the model '
                 "was not sure.</span>" if doubt else "")
        found = S.suggestion(record, shown)
        dropped = (found[1].get("dropped") or {}) if found else {}
        check += "".join(f'<br><span class="ts-sug-doubt">{esc(labels.get(n, n))} left empty: the model wrote a '
                         f"value the check refused ({esc(why)})</span>" for n, why in dropped.items())
        return (f'<div class="ts-suggestion" id="ann-suggestion-box" data-run="{esc(shown)}">'
                f'{badge("suggestion", "warn")} by <code>{esc(shown)}</code>, not a label yet. {chips}{check}'
                '<br><span class="ts-muted"><kbd>Alt</kbd>+<kbd>A</kbd> (or Accept) saves it as the label; '
                "edit a field first to make it yours.</span></div>")
    prov = record.get(S.PROVENANCE)
    if isinstance(prov, dict) and prov.get("run"):
        kept = [labels.get(n, n) for n in prov.get("accepted") or []]
        mine = [labels.get(n, n) for n in prov.get("edited") or []]
        return (f'<div class="ts-suggestion" id="ann-suggestion-box" data-run="{esc(prov["run"])}">'
                f'From <code>{esc(prov["run"])}</code>\'s suggestion: '
                + (f"kept {esc(', '.join(kept))}" if kept else "nothing kept")
                + (f' · <span class="ts-sug-yours">✎ yours: {esc(", ".join(mine))}</span>' if mine else
                   " · accepted unchanged") + "</div>")
    return ""


def edited_fields(record: dict) -> list[str]:
    prov = record.get(S.PROVENANCE)
    return list(prov.get("edited") or []) if isinstance(prov, dict) and record.get("status") in S.LABELED else []


def pass_html(state: dict) -> str:
    """The pass's progress line (the panel polls it): counts, and what to do next."""
    st = state.get("status", "none")
    if st == "none":
        return '<div class="ts-muted" id="ann-pl-state">No pre-label pass yet.</div>'
    total, done = int(state.get("total") or 0), int(state.get("done") or 0)
    pct = 100 * done / total if total else (100 if st == "completed" else 0)
    kind = {"completed": "ok", "running": "info", "loading": "info", "failed": "err"}.get(st, "warn")
    words = {"loading": "loading the model…", "running": "answering…", "completed": "done",
             "stopped": "stopped: Pre-label again goes on where it stopped",
             "interrupted": "interrupted (the studio stopped): Pre-label again goes on where it stopped",
             "failed": "failed"}.get(st, st)
    if state.get("stop_requested"):
        words = "stopping after this batch…"
    counts = (f"{done} / {total} records answered · {state.get('written', 0)} suggestions"
              + (f" · {state['no_fields']} parsed into no field" if state.get("no_fields") else "")
              + (f" · {state['labeled_meanwhile']} labeled meanwhile (kept)" if state.get("labeled_meanwhile") else ""))
    err = (f'<div class="ts-msg ts-msg-warn">{esc(state.get("error"))}'
           + (f"<br><b>What to do:</b> {esc(state['hint'])}" if state.get("hint") else "") + "</div>"
           if state.get("error") else "")
    return (f'<div id="ann-pl-state" data-status="{esc(st)}">{badge(st, kind)} <code>{esc(state.get("run", ""))}</code> '
            f'<span class="ts-muted">{esc(words)}</span><div class="ts-muted">{esc(counts)}</div>'
            f'<div class="ts-progress"><div class="ts-progress-bar" style="width:{pct:.1f}%"></div></div>{err}</div>')


def offer_html(offer: dict | None) -> str:
    if not offer:
        return ""
    return (f'<div class="ts-offer" id="ann-pl-offer">You reviewed <b>{offer["reviewed"]}</b> suggestions of '
            f'<code>{esc(offer["run"])}</code>. Train again on every label, the new ones too '
            f'<span class="ts-muted">({esc(offer["settings"])})</span>'
            + (", or resume the run from its last checkpoint." if offer.get("resume") else ".") + "</div>")
