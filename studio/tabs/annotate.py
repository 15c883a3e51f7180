"""Annotate tab: a queue of images, the current one large, an editor built from the dataset task's
fields (Task.fields), Prev / Next / Next unlabeled / Save / Save and next (with keyboard shortcuts),
autosave on leaving a record, a progress counter, drafts for invalid labels, typing kept in the
browser across a reload, and a warning when someone else saved the same record meanwhile. Only a
changed label is ever written.
A model's suggestion (core/suggestions.py; the pre-label panel, studio/tabs/prelabel_panel.py) opens
in the editor with its doubtful fields marked; Accept (Alt+A) saves it as the label, and a field
edited first is the person's."""
from __future__ import annotations


import gradio as gr

from core import suggestions as S
from core.errors import StudioError
from studio import annotate_drafts as D
from studio import annotate_logic as L
from studio.annotate_editor import Editor
from studio import prelabel_logic as P
from studio import theme
from studio.common import badge, esc, open_dataset, warn
from studio.tabs import prelabel_panel

GALLERY_MAX = 300
# The events that render a record into the editor or answer an edit of it run one at a time, so an
# edit's answer and a render never cross (the edit's handler then sees that the editor moved on).
SERIAL = {"concurrency_id": "annotate-editor", "concurrency_limit": 1}
AUTOSAVE_S = 15  # an edit left alone this long is saved, even if the record is never left
SHORTCUTS = ("<kbd>Ctrl</kbd>+<kbd>Enter</kbd> save and next · <kbd>Alt</kbd>+<kbd>→</kbd> next · "
             "<kbd>Alt</kbd>+<kbd>←</kbd> previous · <kbd>Alt</kbd>+<kbd>U</kbd> next unlabeled · "
             "<kbd>Ctrl</kbd>+<kbd>S</kbd> save · <kbd>Alt</kbd>+<kbd>A</kbd> accept the suggestion")


def build(state, shared: dict) -> dict:
    ds_dd = shared["dataset"]
    book = L.StampBook()
    # session -> (dataset path, record id, stamp) the server last sent to that session's editor, or
    # that editor last saved. A second render of the record the editor already holds at that stamp
    # (the page load's dataset event arriving after the tab's own, a tab switch with autosave off)
    # leaves the editor as it is, so it cannot put the stored values back over what was typed
    # meanwhile, which the next save would then write over the user's own acknowledged save.
    on_screen: dict[str, tuple[str, str | None, str | None]] = {}
    # session -> (the fields the editor was filled with, the run whose suggestion they hold): what a
    # render that leaves the editor alone keeps in `cur`, so a save compares against what is shown
    filled: dict[str, tuple[dict, str | None]] = {}
    cur = gr.State({})
    panel = prelabel_panel.build(state, ds_dd)  # full width above the queue, folded until opened
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=250, elem_classes="ts-panel"):
            with gr.Row():
                filt = gr.Dropdown(list(L.FILTERS), value="all", label="Queue", elem_id="ann-filter", min_width=110)
                order = gr.Dropdown([("dataset order", P.ORDER_DATASET)], value=P.ORDER_DATASET, label="Order",
                                    elem_id="ann-order", min_width=130)
            gallery = gr.Gallery(columns=2, height=640, allow_preview=False, show_label=False,
                                 object_fit="cover", elem_id="ann-gallery", interactive=False)
        with gr.Column(scale=5, min_width=360):
            counter = gr.HTML(elem_id="ann-counter")
            header = gr.HTML(elem_id="ann-header")
            suggestion = gr.HTML(elem_id="ann-suggestion")
            image = gr.Image(type="filepath", interactive=False, show_label=False, height=440,
                             buttons=["fullscreen", "download"], elem_id="ann-image")
            with gr.Row():
                prev_btn = gr.Button("← Prev", elem_id="ann-prev", size="sm")
                next_btn = gr.Button("Next →", elem_id="ann-next", size="sm")
                unl_btn = gr.Button("Next unlabeled ⇥", elem_id="ann-next-unlabeled", size="sm")
                save_btn = gr.Button("Save", elem_id="ann-save", size="sm")
                save_next_btn = gr.Button("Save and next ⏎", variant="primary", elem_id="ann-save-next", size="sm")
                accept_btn = gr.Button("Accept suggestion ✓", variant="primary", elem_id="ann-accept", size="sm",
                                       visible=False)
            with gr.Row():
                autosave = gr.Checkbox(True, label=f"Autosave (every {AUTOSAVE_S} s and on leaving a record)",
                                       elem_id="ann-autosave")
                reviewed = gr.Checkbox(False, label="Mark as reviewed on save", elem_id="ann-reviewed")
            save_msg = gr.HTML(elem_id="ann-save-msg")
            with gr.Row(visible=False) as conflict_row:
                reload_btn = gr.Button("Load their version (drops my edit)", size="sm", elem_id="ann-reload")
                force_btn = gr.Button("Save mine over theirs", size="sm", variant="stop", elem_id="ann-force")
            gr.HTML(f'<div class="ts-shortcuts">{SHORTCUTS}</div>')
        # The editor is built from the task's fields (studio/annotate_editor.py).
        with gr.Column(scale=6, min_width=420, elem_classes="ts-panel"):
            ed = Editor()
            # Which record the editor's values on the page belong to. `cur` is server-side state, set
            # the moment a render returns; the editor's values come from the page, which may not have
            # applied that render yet (a tab opened while the page load's render is on its way sends
            # the editor's initial, empty values with the new record's `cur`). A save goes through
            # only when the page says its editor holds `cur`'s record.
            holding = gr.Textbox("", visible=False, elem_id="ann-holding")
            # The record and stamp the editor's typing is based on (studio/annotate_drafts.py), and the
            # drafts themselves, kept in the browser so a reload loses no typing.
            held_at = gr.Textbox("", visible=False, elem_id="ann-held")
            drafts = gr.BrowserState({}, storage_key=D.STORAGE_KEY, secret=D.secret(state.workspace))
            want = gr.State(None)  # the record named in the address (?record=), opened on the first render

    editors = ed.editors
    view_outputs = [cur, gallery, image, header, counter, *ed.layout, holding, held_at, drafts, save_msg, conflict_row, suggestion, accept_btn, order]

    # -------------------------------------------------------------- rendering
    def render(path, rid, filter_, session, drafts_now=None, order_=P.ORDER_DATASET, refill: bool = False) -> dict:
        """refill: the editor is untouched, so it is filled again even when it holds this record (a
        suggestion that arrived meanwhile then shows)."""
        ds = open_dataset(state, path)
        recs = ds.records()
        choices = P.order_choices(recs)
        order_ = order_ if order_ in {v for _, v in choices} else P.ORDER_DATASET
        q = P.ordered(L.queue(ds, filter_), order_)
        if rid not in {r["id"] for r in recs}:
            rid = P.next_to_review(P.ordered(recs, order_), None) or (q[0]["id"] if q else (recs[0]["id"] if recs else None))
        seen = on_screen.pop(session, None)
        out = {counter: L.progress_html(recs, rid), save_msg: "", conflict_row: gr.update(visible=False),
               order: gr.update(choices=choices, value=order_)}
        shown = q[:GALLERY_MAX]
        items = [(str(ds.image_path(r)), f"{P.mark(r)} {r['id'][:8]}") for r in shown]
        ids = [r["id"] for r in shown]
        out[gallery] = gr.update(value=items, selected_index=ids.index(rid) if rid in ids else None)
        if rid is None:
            out.update(ed.updates(ds.task, {}))
            out.update({holding: "", held_at: "", cur: {"path": str(ds.path), "id": None, "ids": ids, "order": order_},
                        image: None, suggestion: "", accept_btn: gr.update(visible=False),
                        header: '<div class="ts-empty">This dataset has no images yet. Import some in Datasets.</div>'})
            return out
        rec = ds.get(rid)
        book.put(session, str(ds.path), rid, rec.get("updated"))
        on_screen[session] = (str(ds.path), rid, rec.get("updated"))
        kept = seen == on_screen[session] and not refill
        # a waiting suggestion fills the fields the person left empty (core.suggestions.editor_fields)
        f, shown_run, conf = S.editor_fields(ds.task, rec)
        if kept and session in filled:
            f, shown_run = filled[session]  # the editor still holds what it was filled with
            conf = S.editor_fields(ds.task, rec)[2] if shown_run else {}
        filled[session] = (f, shown_run)
        out[cur] = {"path": str(ds.path), "id": rid, "updated": rec.get("updated"), "fields": f, "ids": ids,
                    "task": ds.task.name, "suggestion": shown_run, "order": order_}
        out[image] = str(ds.image_path(rec))
        status = rec.get("status", "unlabeled")
        kind = {"labeled": "ok", "reviewed": "info"}.get(status, "warn")
        out[header] = (f'<div class="ts-rec-head"><code>{esc(rid)}</code> {badge(status, kind)} '
                       f'{badge("split: " + str(rec.get("split") or "none"), "neutral")}</div>')
        out[suggestion] = P.suggestion_html(ds.task, rec, shown_run, conf)
        out[accept_btn] = gr.update(visible=bool(shown_run))
        if not kept:
            draft = D.draft_values(drafts_now, str(ds.path), rid, rec.get("updated"), len(editors))
            edited = P.edited_fields(rec)
            notes = {n: P.field_note(n, conf, edited) for n in {*conf, *edited}}
            restored = ed.restore(ds.task, f, draft) if draft is not None else None
            out.update(restored or ed.updates(ds.task, f, notes))
            if restored:
                out[save_msg] = ('<div class="ts-msg ts-msg-info">Restored what you typed here before the page was '
                                 "reloaded. Not saved yet: it saves like any edit.</div>")
            out[holding] = rid
            out[held_at] = D.held(str(ds.path), rid, rec.get("updated"))
        else:
            out.pop(save_msg)  # the editor is left as it is, and so is what was said about it
        return out

    def unchanged(data: dict, c: dict) -> bool:
        """The editor holds the label it was loaded with (or last saved), as the task compares them."""
        task = open_dataset(state, c["path"]).task
        return L.unchanged(task, ed.values(task, data), c.get("fields"))

    def on_edit(changed_slot: int | None):
        """The live check after a user edit; a change of a field other fields follow (Task.prefill,
        Task.editor_setup: one field sets another's value or the digit pickers) updates those too."""
        def handler(data, request: gr.Request):
            c = data[cur] or {}
            if not c.get("path"):
                return {}
            # The editor moved on since this edit (Save and next right after typing): an answer about
            # the last record's pickers must not land on the next record's (its save would write them).
            # The annotate events run one at a time (SERIAL), so this check sees every render before it.
            if on_screen.get(session_of(request), (None, None))[:2] != (c["path"], data[holding]):
                return {}
            task = open_dataset(state, c["path"]).task
            plan = L.editor_plan(task)
            out: dict = {}
            try:
                fields = L.fields_from_editor(task, ed.values(task, data), None)
            except StudioError as e:
                return {ed.check: f'<div class="ts-check" id="ann-check-box">{badge("incomplete", "warn")} '
                                  f"{esc(e.message)}</div>"}
            if changed_slot is not None and changed_slot < len(plan["slots"]):
                name = plan["slots"][changed_slot][0].name
                fill = task.prefill(name, fields) if hasattr(task, "prefill") else {}
                for i, (field, kind) in enumerate(plan["slots"]):
                    if field.name in fill and field.name != name:
                        out[ed.slots[i][kind]] = L.to_editor(field, kind, fill[field.name])
                        fields[field.name] = fill[field.name]
                dig = plan["digits"]
                if dig is not None:
                    out.update(zip(ed.bits, ed.bit_updates(task, dig.name, fields, [data[b] for b in ed.bits])))
            out.update(ed.check_updates(task, fields, plan["sql"].name if plan["sql"] else None))
            return out
        return handler

    def do_save(data: dict, session: str, force: bool = False, accept: bool = False) -> dict:
        """Saves the editor when its label differs from the stored one (L.unchanged, the task's own
        comparison); returns updates (cur, message, conflict row), with "_unchanged" when nothing was
        written. A Save click on an unchanged record only marks it reviewed, when asked to.
        StudioError on conflict. accept: the shown suggestion is saved as the label even when untouched."""
        c = dict(data[cur])
        if data[holding] != c.get("id"):
            raise StudioError("The editor is still loading this record, so nothing was saved. "
                              "Save again once its labels show.")
        ds = open_dataset(state, c["path"])
        values = ed.values(ds.task, data)
        fields = {}
        if accept or not L.unchanged(ds.task, values, c.get("fields")):
            fields = L.fields_from_editor(ds.task, values, c.get("fields"))
        elif c.get("suggestion"):  # looking at a suggestion is not accepting it
            return {save_msg: '<div class="ts-msg ts-msg-info">No changes to save: this is the model\'s suggestion. '
                              "Accept (Alt+A) makes it the label.</div>", "_unchanged": True}
        elif not (data[reviewed] and ds.get(c["id"]).get("status") == "labeled"):
            return {save_msg: '<div class="ts-msg ts-msg-info">No changes to save.</div>', "_unchanged": True}
        expected = book.get(session, c["path"], c["id"], c.get("updated"))
        try:
            rec, msg = L.save(ds, c["id"], fields, expected, reviewed=data[reviewed], force=force,
                              shown_suggestion=c.get("suggestion"))
        except StudioError as e:
            if "changed by someone else" in e.message or "deleted by someone else" in e.message:
                warn(e)
                return {save_msg: f'<div class="ts-msg ts-msg-warn">⚠ {esc(e.message)}</div>',
                        conflict_row: gr.update(visible=True), "_conflict": True}
            raise
        book.put(session, c["path"], c["id"], rec["updated"])
        # what the editor holds now: the saved label (a draft may still hold the suggestion's other fields)
        held, shown_run, _ = S.editor_fields(ds.task, rec)
        out = {}
        if on_screen.get(session, (None, None))[:2] == (c["path"], c["id"]):
            on_screen[session] = (c["path"], c["id"], rec["updated"])  # the editor holds what it saved
            filled[session] = (held, shown_run)
            out[held_at] = D.held(c["path"], c["id"], rec["updated"], after=expected)  # its draft moves along
        c.update(updated=rec["updated"], fields=held, suggestion=shown_run)
        kind = "warn" if "draft" in msg else "ok"
        return {**out, cur: c, save_msg: f'<div class="ts-msg ts-msg-{kind}">{esc(msg)}</div>',
                conflict_row: gr.update(visible=False)}

    def navigate(data: dict, session: str, target_of, save: bool = False) -> dict:
        """Leaves the record for target_of's: saved first when autosave is on and the label changed,
        or, with save (Save and next), as the Save button saves it, whatever autosave says."""
        c = data[cur] or {}
        if not c.get("id"):
            return render(data[ds_dd], data[want], data[filt], session, data[drafts], data[order])
        pre: dict = {}
        ds = open_dataset(state, c["path"])
        rid = target_of(ds, c)
        untouched = False  # the editor holds exactly what it was filled with
        if data[holding] == c["id"]:
            try:
                untouched = unchanged(data, c)
            except StudioError:
                untouched = False
        if (data[autosave] or save) and data[holding] == c["id"]:  # else the editor never showed this record
            try:
                if save or not unchanged(data, c):  # do_save itself writes only a changed label
                    pre = do_save(data, session)
            except StudioError as e:  # an unsaveable editor state, a failed write: stay, say why
                warn(e)
                return {save_msg: f'<div class="ts-msg ts-msg-warn">Not saved: {esc(e.message)}</div>'}
            if pre.pop("_unchanged", False):
                pre.pop(save_msg, None)  # nothing was written: nothing to say on the next record
            if pre.pop("_conflict", False):
                return pre
        elif data[holding] == c["id"] and rid != c["id"]:
            pre[drafts] = D.without(data[drafts], c["path"], c["id"])  # left unsaved with autosave off: dropped
        # staying on an untouched record refills its editor: a suggestion that arrived meanwhile shows
        out = render(c["path"], rid, data[filt], session, data[drafts], data[order],
                     refill=untouched and rid == c["id"])
        if drafts in pre:
            out[drafts] = pre[drafts]
        if pre.get(save_msg) and rid == c["id"]:
            out[save_msg] = pre[save_msg]
        elif pre.get(save_msg):
            out[save_msg] = pre[save_msg].replace("Saved", f"Saved {esc(c['id'][:8])}", 1)
        return out

    # -------------------------------------------------------------- events
    def session_of(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "local"

    def on_dataset(path, filter_, c, wanted, drafts_now, request: gr.Request):
        if not path:
            return {header: '<div class="ts-empty">Pick or create a dataset.</div>'}
        c = c or {}
        try:
            # the page's first render opens the record in the address (a reload comes back to it); the
            # tab's own render may have come first, on this dataset: then its record stays
            here = str(open_dataset(state, path).path)
            rid = c["id"] if c.get("id") and c.get("path") == here else (None if c.get("id") else wanted)
            return render(path, rid, filter_, session_of(request), drafts_now)
        except StudioError as e:
            warn(e)
            return {header: f'<div class="ts-empty">{esc(e.message)}</div>'}

    all_inputs = {cur, ds_dd, filt, order, autosave, reviewed, holding, want, drafts, *editors}

    def nav_handler(target_of, save: bool = False):
        def handler(data, request: gr.Request):
            try:
                return navigate(data, session_of(request), target_of, save)
            except StudioError as e:
                warn(e)
                return {}
        return handler

    def by_step(delta):
        return lambda ds, c: L.step(c.get("ids") or [r["id"] for r in ds.records()], c["id"], delta)

    def unlabeled(ds, c):  # in the queue's order; a suggested record waits for review too
        rid = P.next_to_review(P.ordered(ds.records(), c.get("order")), c["id"])
        if rid is None:
            gr.Info("Every record is labeled.")
            return c["id"]
        return rid

    def on_save(data, request: gr.Request):
        try:
            out = do_save(data, session_of(request))
        except StudioError as e:
            warn(e)
            return {save_msg: f'<div class="ts-msg ts-msg-warn">Not saved: {esc(e.message)}</div>'}
        out.pop("_conflict", None)
        out.pop("_unchanged", None)
        if cur in out:  # refresh the badges and the counter
            c = out[cur]
            fresh = render(c["path"], c["id"], data[filt], session_of(request), order_=data[order])
            fresh[save_msg] = out[save_msg]
            if held_at in out:
                fresh[held_at] = out[held_at]
            for comp in editors:  # keep what is in the editor exactly as typed
                fresh.pop(comp, None)
            for comp in ed.checks:
                fresh.pop(comp, None)
            return fresh
        return out

    def on_force(data, request: gr.Request):
        try:
            out = do_save(data, session_of(request), force=True)
        except StudioError as e:
            warn(e)
            return {}
        out.pop("_conflict", None)
        out.pop("_unchanged", None)
        return out

    def on_reload(data, request: gr.Request):
        c = data[cur] or {}
        out = render(c.get("path"), c.get("id"), data[filt], session_of(request),  # theirs; my draft is dropped
                     order_=data[order])
        out[drafts] = D.without(data[drafts], c.get("path") or "", c.get("id") or "")
        return out

    def on_gallery(data, evt: gr.SelectData, request: gr.Request):
        ids = (data[cur] or {}).get("ids") or []
        idx = evt.index if isinstance(evt.index, int) else (evt.index or [0])[0]
        target_id = ids[idx] if 0 <= idx < len(ids) else None
        return nav_handler(lambda ds, c: target_id or c["id"])(data, request)

    draft_inputs = [drafts, holding, held_at, *editors]

    def after(event):
        """What follows an answer that may have set the editor: the draft moves to a saved stamp, and
        the address names the record (?record=), so a reload opens it again."""
        event.then(None, [drafts, holding, held_at], [drafts], js=D.MOVE_JS, show_progress="hidden")
        event.then(None, holding, None, js=theme.set_param_js("record"), show_progress="hidden")
        return event

    def on_accept(data, request: gr.Request):
        """Alt+A: the suggestion shown (with any field edited first: then that field is the person's)
        becomes the label, and the next record to review opens. An incomplete one is refused."""
        c = data[cur] or {}
        if not c.get("suggestion"):
            gr.Info("This record has no suggestion to accept.")
            return {}
        try:
            ds = open_dataset(state, c["path"])
            fields = L.fields_from_editor(ds.task, ed.values(ds.task, data), c.get("fields"))
            errors = [i for i in ds.task.validate({"fields": fields}) if i.severity == "error"]
            if errors:
                raise StudioError(f"The suggestion is incomplete: {errors[0].message}",
                                  "Fill in what is missing, then accept (or save) it.")
            out = do_save(data, session_of(request), accept=True)
            if out.pop("_conflict", False):
                return out
            c2 = out[cur]
            nxt = P.next_to_review(P.ordered(L.queue(ds, data[filt]), data[order]), c2["id"]) or c2["id"]
            fresh = render(c2["path"], nxt, data[filt], session_of(request), data[drafts], data[order])
            fresh[save_msg] = out[save_msg].replace("Saved", f"Accepted {esc(c2['id'][:8])}: saved", 1)
            return fresh
        except StudioError as e:
            warn(e)
            return {save_msg: f'<div class="ts-msg ts-msg-warn">Not accepted: {esc(e.message)}</div>'}

    def on_order(data, request: gr.Request):  # a new order starts at its first record to review
        first = lambda ds, c: P.next_to_review(P.ordered(L.queue(ds, data[filt]), data[order]), None) or c["id"]  # noqa: E731
        return nav_handler(first)(data, request)

    def on_pass_end(data, request: gr.Request):
        """A pre-label pass ended: the queue's marks, counts and orders, not the editor."""
        c = data[cur] or {}
        if not c.get("path"):
            return {}
        out = render(c["path"], c.get("id"), data[filt], session_of(request), order_=data[order])
        return {k: v for k, v in out.items() if k in (gallery, counter, order)}

    after(ds_dd.change(on_dataset, [ds_dd, filt, cur, want, drafts], view_outputs, **SERIAL))
    after(order.input(on_order, all_inputs, view_outputs, **SERIAL))
    after(accept_btn.click(on_accept, all_inputs, view_outputs, **SERIAL))
    panel["finished"].change(on_pass_end, all_inputs, [gallery, counter, order], **SERIAL)
    after(filt.change(nav_handler(lambda ds, c: c["id"]), all_inputs, view_outputs, **SERIAL))
    after(prev_btn.click(nav_handler(by_step(-1)), all_inputs, view_outputs, **SERIAL))
    after(next_btn.click(nav_handler(by_step(+1)), all_inputs, view_outputs, **SERIAL))
    after(unl_btn.click(nav_handler(unlabeled), all_inputs, view_outputs, **SERIAL))
    after(save_next_btn.click(nav_handler(by_step(+1), save=True), all_inputs, view_outputs, **SERIAL))
    after(gallery.select(on_gallery, all_inputs, view_outputs, **SERIAL))
    after(save_btn.click(on_save, all_inputs, view_outputs, **SERIAL))
    after(force_btn.click(on_force, all_inputs, view_outputs, **SERIAL))
    after(reload_btn.click(on_reload, all_inputs, view_outputs, **SERIAL))
    edit_inputs = {cur, holding, *editors}
    edit_outputs = [*ed.slot_comps, *ed.bits, *ed.checks]

    def on_input(comp, handler):
        # the draft is written by the page at once (a reload a moment later keeps the typing), and
        # again after the check's answer, which may have filled other fields (the keyway's brand)
        comp.input(None, draft_inputs, [drafts], js=D.WRITE_JS, show_progress="hidden")
        comp.input(handler, edit_inputs, edit_outputs, trigger_mode="always_last", show_progress="hidden",
                   **SERIAL).then(
            None, draft_inputs, [drafts], js=D.WRITE_JS, show_progress="hidden")

    on_input(ed.code, on_edit(None))
    for i, slot in enumerate(ed.slots):
        for comp in slot.values():
            on_input(comp, on_edit(i))
    for comp in ed.bits:
        on_input(comp, on_edit(None))

    def on_timer(data, request: gr.Request):
        """Saves an edit nobody has saved yet, quietly; a record someone else changed meanwhile is
        left to the Save button, which shows the conflict (a timer must not warn every 15 s).
        Nothing to do is gr.skip(): an empty dict fails Gradio's output check on this queue-less event.
        A tick that lands while a Next click's answer is on its way reads the new record's `cur` with
        the old record's editor, and `holding` (still the old record) keeps it from saving them there."""
        c = data[cur] or {}
        if not data[autosave] or not c.get("id") or data[holding] != c["id"]:
            return gr.skip()
        session = session_of(request)
        try:
            if unchanged(data, c):
                return gr.skip()
            ds = open_dataset(state, c["path"])
            if ds.get(c["id"]).get("updated") != book.get(session, c["path"], c["id"], c.get("updated")):
                return gr.skip()
            out = do_save(data, session)
        except StudioError:
            return gr.skip()  # an editor state that cannot be saved yet: Save says why
        if out.pop("_unchanged", False):
            return gr.skip()
        out.pop("_conflict", None)
        # the timer never moves the editor: a Next click may have landed meanwhile, and the session's
        # stamp book (not `cur`) already knows the stamp this save wrote
        out = {k: v for k, v in out.items() if k in (save_msg, conflict_row, held_at)}
        if save_msg in out:
            out[save_msg] = out[save_msg].replace("Saved", "Autosaved", 1)
        return out

    after(gr.Timer(AUTOSAVE_S).tick(on_timer, all_inputs, [save_msg, conflict_row, held_at], show_progress="hidden",
                                    trigger_mode="always_last", queue=False))
    # Coming back to the tab: autosave if needed, then show the record fresh from disk (an import or
    # another user may have changed the dataset meanwhile).
    show = nav_handler(lambda ds, c: c["id"])
    return {"cur": cur, "render": render, "show": show, "all_inputs": all_inputs, "view_outputs": view_outputs, "on_dataset": on_dataset,
            "code": ed.code, "slots": ed.slots, "bits": ed.bits, "filter": filt, "want": want, "after": after,
            "serial": SERIAL,
            # the handlers behind Save and the live check, and what they read (tests drive them as the page does)
            "on_save": on_save, "on_edit": on_edit, "editors": editors, "holding": holding, "autosave": autosave,
            "reviewed": reviewed, "order": order, "drafts": drafts, "save_msg": save_msg, "check": ed.check}
