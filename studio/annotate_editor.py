"""The Annotate tab's editor, built from the task's fields (Task.fields): one code editor for a "sql"
field, one row of digit pickers for a "digits" field (its alphabet; Task.editor_setup may make it
follow another field), and slots for the other kinds, each slot holding one component per kind
(an object or a list of objects: a table of its sub-fields); updates() shows the right one, labelled
and id'd after its field (#ann-<field name>), with the live check, the training target and the
task's preview."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from core.errors import StudioError
from studio import annotate_logic as L
from studio.common import badge


class Editor:
    """Builds its components where it is created (inside the tab's editor column)."""

    def __init__(self):
        self.code = gr.Code(language="sql", label="SQL", lines=14, max_lines=30, interactive=True,
                            elem_id="ann-sql", visible=False)
        self.check = gr.HTML(elem_id="ann-check")
        self.slots: list[dict] = []
        self.slot_rows = []  # one row per two slots, hidden when neither is used
        for r in range(0, L.MAX_SLOTS, 2):
            with gr.Row(equal_height=False, visible=False) as row:
                self.slot_rows.append(row)
                for i in range(r, r + 2):
                    with gr.Column(min_width=200):
                        self.slots.append({
                            "text": gr.Textbox(visible=False, max_lines=1, elem_id=f"ann-slot{i}-text"),
                            "number": gr.Number(visible=False, elem_id=f"ann-slot{i}-number"),
                            "choice": gr.Dropdown([], visible=False, elem_id=f"ann-slot{i}-choice"),
                            "boolean": gr.Checkbox(visible=False, elem_id=f"ann-slot{i}-boolean"),
                            "list": gr.Textbox(visible=False, lines=3, elem_id=f"ann-slot{i}-list"),
                            "multi": gr.Dropdown([], multiselect=True, visible=False, elem_id=f"ann-slot{i}-multi"),
                            # an object (one row) or a list of objects (rows): its sub-fields as columns
                            "table": gr.Dataframe(visible=False, interactive=True, type="array", wrap=True,
                                                  max_height=320, elem_id=f"ann-slot{i}-table"),
                        })
        self.digits_label = gr.Markdown(visible=False, elem_classes="ts-label")
        with gr.Row(elem_classes="ts-bits"):
            self.bits = [gr.Dropdown([("–", "")], value="", label=str(i + 1), min_width=58, visible=False,
                                     elem_id=f"ann-bit-{i + 1}", filterable=True)
                         for i in range(L.MAX_POSITIONS)]
        with gr.Tabs():
            with gr.Tab("Preview"):
                self.preview = gr.HTML(elem_id="ann-preview")
            with gr.Tab("Table"):
                self.table = gr.Dataframe(value=[], interactive=False, max_height=300, wrap=True, elem_id="ann-tables")
        self.target = gr.Code(label="Training target (what the model learns to write)", language=None,
                              interactive=False, lines=3, elem_id="ann-target")
        self.slot_comps = [c for slot in self.slots for c in slot.values()]
        self.editors = [self.code, *self.slot_comps, *self.bits]   # every component holding a value
        self.checks = [self.check, self.target, self.preview, self.table]
        self.layout = [self.code, self.digits_label, *self.slot_rows, *self.slot_comps, *self.bits, *self.checks]

    def bit_updates(self, task, name: str, fields: dict, values: list) -> list:
        setup = L.digit_setup(task, name, fields)
        n = setup["positions"] or 0
        choices = [("–", "")] + setup["digits"]
        out = []
        for i in range(L.MAX_POSITIONS):
            v = str(values[i]) if i < len(values) and values[i] not in (None, "") else ""
            out.append(gr.update(choices=choices, value=v if v in setup["digits"] else "", visible=i < n))
        return out

    def check_updates(self, task, fields: dict, sql_name: str | None) -> dict:
        out = L.live_check(task, fields)
        return {self.check: gr.update(value=out["status"], elem_id=f"ann-{sql_name}-status" if sql_name else "ann-check"),
                self.target: gr.update(value=out["target"], visible=sql_name is None),
                self.preview: out["preview"],
                self.table: gr.update(value=pd.DataFrame(out["rows"], columns=out["headers"] or None))}

    def _table_update(self, field, value) -> dict:
        """A table slot for an object / list of objects: a Dataframe has no info line, so the help
        goes into its label."""
        shape, rows = L.table_columns(field), L.to_editor(field, "table", value)
        label = field.label + ("" if field.required else " (optional)") + (f" — {field.help}" if field.help else "")
        return gr.update(visible=True, label=label, headers=shape["headers"], datatype=shape["datatype"],
                         column_count=len(shape["headers"]), row_count=len(rows),
                         row_limits=(1, 1) if shape["fixed_rows"] else None,
                         value={"headers": shape["headers"], "data": rows}, elem_id=f"ann-{field.name}")

    def updates(self, task, f: dict, notes: dict | None = None) -> dict:
        """Every editor component shown, labelled and filled for this task's fields; notes: a suffix of
        a field's label (the model's doubt about a suggested value, or that the value is the person's)."""
        plan, shown = L.editor_plan(task), L.shown_values(task, f)  # what L.unchanged compares with
        notes = notes or {}
        out: dict = {}
        sql = plan["sql"]
        out[self.code] = (gr.update(visible=True, label=sql.label + notes.get(sql.name, ""), value=shown[sql.name],
                                    elem_id=f"ann-{sql.name}")
                          if sql else gr.update(visible=False, value="", elem_id="ann-sql"))
        for i, slot in enumerate(self.slots):
            field, kind = plan["slots"][i] if i < len(plan["slots"]) else (None, None)
            for k, comp in slot.items():
                if k != kind:
                    out[comp] = gr.update(visible=False, elem_id=f"ann-slot{i}-{k}")
                    continue
                if k == "table":
                    out[comp] = self._table_update(field, f.get(field.name))
                    continue
                extra, info = {}, field.help or ""
                if k in ("choice", "multi"):
                    extra["choices"] = list(field.choices or [])
                if k == "number":
                    # The range goes into the hint, not into gr.Number's own bounds: an out-of-range value
                    # then reaches the task's check and is explained there, instead of a Gradio error.
                    extra["precision"] = 0 if field.integer else None
                    if L.range_hint(field):
                        info = f"{info} ({L.range_hint(field)})".strip()
                out[comp] = gr.update(visible=True, label=field.label + ("" if field.required else " (optional)")
                                      + notes.get(field.name, ""),
                                      info=info or None, value=shown[field.name],
                                      elem_id=f"ann-{field.name}", **extra)
        for r, row in enumerate(self.slot_rows):
            out[row] = gr.update(visible=2 * r < len(plan["slots"]))
        dig = plan["digits"]
        out[self.digits_label] = gr.update(visible=dig is not None,
                                           value=f"**{dig.label}**{notes.get(dig.name, '')} — {dig.help}" if dig else "")
        out.update(zip(self.bits, self.bit_updates(task, dig.name, f, shown[dig.name]) if dig else
                       [gr.update(visible=False, value="") for _ in self.bits]))
        out.update(self.check_updates(task, f, sql.name if sql else None))
        return out

    def values(self, task, data: dict) -> dict:
        """{field name: editor value} of the task's fields, read from the components."""
        plan = L.editor_plan(task)
        values = {field.name: data[self.slots[i][kind]] for i, (field, kind) in enumerate(plan["slots"])}
        if plan["sql"]:
            values[plan["sql"].name] = data[self.code]
        if plan["digits"]:
            values[plan["digits"].name] = [data[b] for b in self.bits]
        return values

    def restore(self, task, f: dict, values: list) -> dict | None:
        """The updates that put a draft's values (one per component of self.editors) back over the
        stored label f; None when they are the stored label."""
        data = dict(zip(self.editors, values))
        try:
            if L.unchanged(task, self.values(task, data), f):
                return None
            fields = L.fields_from_editor(task, self.values(task, data), f)
        except StudioError:
            fields = None  # half-typed (a gap in the cuts): shown as typed; the check says what is missing
        out = self.updates(task, fields if fields is not None else f)
        for comp, v in data.items():
            out[comp] = {**out[comp], "value": v}
        if fields is None:
            out[self.check] = (f'<div class="ts-check" id="ann-check-box">{badge("incomplete", "warn")} '
                               "Finish the label; it is checked as you type.</div>")
        return out
