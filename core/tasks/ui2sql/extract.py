"""Finding the SQL in a model answer: markdown fences, chatter before and after, cut-off output.

The result has the same length and line layout as the answer, with everything that is not SQL
blanked to spaces, so the parser's line/column numbers point into the text the user sees.
"""
from __future__ import annotations

import re

_STMT = (r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?"
         r"(?:TABLE|VIEW|INDEX|UNIQUE\s+INDEX|TYPE|SCHEMA|DATABASE|SEQUENCE|EXTENSION|TRIGGER)\b"
         r"|ALTER\s+TABLE\b|DROP\s+(?:TABLE|INDEX|VIEW)\b|INSERT\s+INTO\b")
_STMT_AT_LINE = re.compile(r"(?im)^[ \t]*(?:" + _STMT + ")")
_STMT_ANY = re.compile(r"(?i)\b(?:" + _STMT + ")")
# Mid-line, only an upper-case CREATE TABLE name ( counts: "how to create a table" is prose.
_STMT_INLINE = re.compile(
    r"\bCREATE\s+(?:TEMP\w*\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[^\s(;]+\s*\(")
_FENCE = re.compile(r"```[^\n`]*\n?")
_WORD = re.compile(r"[^\W\d_]{2,}")


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """Keep text inside spans; every other character becomes a space (newlines stay)."""
    out = [c if c == "\n" else " " for c in text]
    for a, b in spans:
        out[a:b] = text[a:b]
    return "".join(out)


def _fenced_spans(text: str) -> list[tuple[int, int]]:
    """Contents of ``` fences; an unclosed last fence (a cut-off answer) runs to the end."""
    spans, pos = [], 0
    while True:
        m = _FENCE.search(text, pos)
        if not m:
            return spans
        close = text.find("```", m.end())
        end = len(text) if close < 0 else close
        spans.append((m.end(), end))
        if close < 0:
            return spans
        pos = close + 3


def extract_sql(text: str) -> str:
    """The SQL part of a model answer, same length and line layout as `text`, chatter blanked."""
    spans = [s for s in _fenced_spans(text) if _STMT_ANY.search(text, s[0], s[1])]
    if spans:
        out = list(_blank(text, spans))
        # Separate fenced blocks that forgot their ';' by writing one where the fence was.
        for a, b in spans[:-1]:
            if text[a:b].rstrip()[-1:] != ";" and b < len(out):
                out[b] = ";"
        return "".join(out)
    found = [m for m in (_STMT_AT_LINE.search(text), _STMT_INLINE.search(text)) if m]
    m = min(found, key=lambda m: m.start()) if found else _STMT_ANY.search(text)
    if not m:
        return text                      # no recognisable statement: let the parser explain
    start = m.start() + len(m.group(0)) - len(m.group(0).lstrip())
    semi = text.rfind(";", start)
    # A statement after the last ';' (the final table without its ';') is SQL, not chatter.
    tails = list(_STMT_ANY.finditer(text, max(semi + 1, start)))
    if semi >= 0 and not tails:
        # After the last ';' comes chatter ("Hope this helps!"), or stray code such as the ')' an
        # editor's auto-closed brackets leave: text with no word in it is kept, so the parser flags it.
        end = semi + 1 if _WORD.search(text, semi + 1) or not text[semi + 1:].strip(" \t\r\n`") else len(text)
    else:                                # no ';' after the last statement: to its column list's end
        end = _statement_end(text, tails[-1].start() if tails else start)
    return _blank(text, [(start, end)])


def _statement_end(text: str, pos: int) -> int:
    """End of the line holding the ')' that closes the first '(' after pos (quotes skipped);
    the end of the text when it never closes (a cut-off answer)."""
    depth, quote, i = 0, "", text.find("(", pos)
    if i < 0:
        return len(text)
    while i < len(text):
        c = text[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                nl = text.find("\n", i)
                return len(text) if nl < 0 else nl
        i += 1
    return len(text)
