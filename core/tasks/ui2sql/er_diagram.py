"""Entity-relationship picture of a parsed schema as an SVG string: tables as boxes (primary-key
columns marked), foreign keys as arrows from the referencing column to the referenced column.
Plain SVG so it renders offline inside gr.HTML with no JavaScript."""
from __future__ import annotations

import html
import math

BOX_W, ROW_H, HEAD_H, GAP_X, GAP_Y, PAD = 230, 20, 28, 90, 40, 16
MAX_ROWS = 14  # longer tables are cut with "+N more" so one wide table cannot swamp the picture


def _rows(table: dict) -> list[dict]:
    cols = table.get("columns") or []
    return cols[:MAX_ROWS]


def _layout(tables: list[dict]) -> dict[str, tuple[float, float, float]]:
    """name (lower) -> (x, y, height). Tables are placed in a grid, referenced tables first so
    arrows mostly point left-to-right and up."""
    ncols = max(1, min(4, math.ceil(math.sqrt(len(tables)))))
    heights = {t["name"].lower(): HEAD_H + ROW_H * (len(_rows(t)) + (len(t.get("columns") or []) > MAX_ROWS)) + 6
               for t in tables}
    pos, col_x = {}, [PAD + 44 + i * (BOX_W + GAP_X) for i in range(ncols)]
    y_next = [PAD] * ncols
    for i, t in enumerate(tables):
        c = i % ncols
        key = t["name"].lower()
        pos[key] = (col_x[c], y_next[c], heights[key])
        y_next[c] += heights[key] + GAP_Y
    return pos


def _order(tables: list[dict]) -> list[dict]:
    """Referenced tables before the tables that reference them (stable otherwise)."""
    names = {t["name"].lower() for t in tables}
    depth: dict[str, int] = {}

    def d(t, seen=()):
        key = t["name"].lower()
        if key in depth:
            return depth[key]
        refs = [fk["ref_table"].lower() for fk in t.get("foreign_keys") or []
                if fk["ref_table"].lower() in names and fk["ref_table"].lower() not in seen and fk["ref_table"].lower() != key]
        by = {x["name"].lower(): x for x in tables}
        depth[key] = 1 + max((d(by[r], (*seen, key)) for r in refs), default=-1)
        return depth[key]

    return sorted(tables, key=lambda t: d(t))


def er_svg(tables: list[dict], empty_text: str = "No tables yet") -> str:
    if not tables:
        return (f'<div class="ts-er-empty">{html.escape(empty_text)}</div>')
    tables = _order(tables)
    pos = _layout(tables)
    width = max(x for x, _, _ in pos.values()) + BOX_W + PAD
    height = max(y + h for _, y, h in pos.values()) + PAD
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ts-er" viewBox="0 0 {width:.0f} {height:.0f}" '
             f'width="100%" style="max-width:{width:.0f}px" role="img" aria-label="Entity-relationship diagram">',
             '<defs><marker id="ts-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6366f1"/></marker></defs>']
    row_y: dict[tuple[str, str], float] = {}
    boxes = []
    for t in tables:
        key = t["name"].lower()
        x, y, h = pos[key]
        pk = {c.lower() for c in t.get("primary_key") or []}
        fkcols = {c.lower() for fk in t.get("foreign_keys") or [] for c in fk["columns"]}
        b = [f'<g class="ts-er-table"><rect x="{x}" y="{y}" width="{BOX_W}" height="{h}" rx="8" fill="#ffffff" '
             f'stroke="#c7d2fe" stroke-width="1.5"/>',
             f'<path d="M{x},{y + 8} a8,8 0 0 1 8,-8 h{BOX_W - 16} a8,8 0 0 1 8,8 v{HEAD_H - 8} h-{BOX_W} z" fill="#4f46e5"/>',
             f'<text x="{x + 10}" y="{y + 19}" font-size="13" font-weight="600" fill="#fff" '
             f'font-family="ui-sans-serif,system-ui,sans-serif">{html.escape(t["name"])}</text>']
        for i, c in enumerate(_rows(t)):
            cy = y + HEAD_H + ROW_H * i + 14
            row_y[(key, c["name"].lower())] = cy - 4
            name = c["name"].lower()
            mark = "PK" if name in pk else ("FK" if name in fkcols else "")
            color = "#b45309" if mark == "PK" else "#4f46e5"
            if mark:
                b.append(f'<text x="{x + 8}" y="{cy}" font-size="9" font-weight="700" fill="{color}" '
                         f'font-family="ui-monospace,monospace">{mark}</text>')
            weight = ' font-weight="600"' if mark == "PK" else ""
            b.append(f'<text x="{x + 30}" y="{cy}" font-size="12" fill="#111827" '
                     f'font-family="ui-monospace,SFMono-Regular,monospace"{weight}>{html.escape(c["name"])}</text>')
            b.append(f'<text x="{x + BOX_W - 8}" y="{cy}" font-size="10" fill="#6b7280" text-anchor="end" '
                     f'font-family="ui-monospace,monospace">{html.escape(_short(c.get("type") or ""))}</text>')
        extra = len(t.get("columns") or []) - MAX_ROWS
        if extra > 0:
            cy = y + HEAD_H + ROW_H * MAX_ROWS + 14
            b.append(f'<text x="{x + 30}" y="{cy}" font-size="11" fill="#6b7280" font-style="italic" '
                     f'font-family="ui-sans-serif,system-ui">+{extra} more</text>')
        b.append("</g>")
        boxes.append("".join(b))
    arrows = []
    for t in tables:
        src = t["name"].lower()
        for fk in t.get("foreign_keys") or []:
            dst = fk["ref_table"].lower()
            if dst not in pos:
                continue
            sx, sy0, _ = pos[src]
            dx, dy0, _ = pos[dst]
            col = fk["columns"][0].lower() if fk["columns"] else ""
            ref_col = (fk.get("ref_columns") or [""])[0].lower()
            sy = row_y.get((src, col), sy0 + HEAD_H / 2)
            dy = row_y.get((dst, ref_col), dy0 + HEAD_H / 2)
            if src == dst:  # self reference: a loop on the right side
                x1 = sx + BOX_W
                arrows.append(f'<path d="M{x1},{sy} C{x1 + 40},{sy} {x1 + 40},{dy} {x1 + 2},{dy}" fill="none" '
                              'stroke="#6366f1" stroke-width="1.5" marker-end="url(#ts-arrow)"/>')
                continue
            if sx + BOX_W <= dx:        # target to the right: leave right, enter left
                x1, x2, d1, d2 = sx + BOX_W, dx, 60, -60
            elif dx + BOX_W <= sx:      # target to the left: leave left, enter right
                x1, x2, d1, d2 = sx, dx + BOX_W, -60, 60
            else:                       # same grid column: a bow on the left side
                x1, x2, d1, d2 = sx, dx, -50, -50
            arrows.append(f'<path d="M{x1},{sy} C{x1 + d1},{sy} {x2 + d2},{dy} {x2},{dy}" fill="none" '
                          'stroke="#6366f1" stroke-width="1.5" opacity="0.85" marker-end="url(#ts-arrow)"/>')
    parts += arrows + boxes + ["</svg>"]  # boxes on top: lines pass behind them
    return '<div class="ts-er-wrap">' + "".join(parts) + "</div>"


def _short(t: str) -> str:
    return t if len(t) <= 16 else t[:15] + "…"
