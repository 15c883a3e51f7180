"""python -m core eval --run RUN [--split val] [--base] [--json] [--batch-size N] [--limit N]"""
from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="score a run on a dataset split (writes RUN/eval/<split>.*)")
    p.add_argument("--run", required=True, help="run folder, or a run id under workspace/runs")
    p.add_argument("--split", default="val", help="dataset split to score (default: val)")
    p.add_argument("--base", action="store_true", help="also score the base model (adapters off)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--batch-size", type=int, default=8, help="records per generate call (default 8)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N records")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap on answer length (default: the task's preset)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.set_defaults(func=run)


def run(args) -> int:
    from core.errors import StudioError
    from core.evaluate import eval_paths, evaluate_run, format_summary

    if args.batch_size < 1:
        raise StudioError(f"--batch-size must be 1 or more, got {args.batch_size}.", "e.g. --batch-size 8")

    tty = sys.stderr.isatty()

    def progress(done, total):
        # \r redraws one line on a terminal; in a log it would glue the counts together, so a log
        # gets one line at the end
        if args.json:
            return
        if tty:
            print(f"\r{done}/{total} records", end="", file=sys.stderr, flush=True)
        elif done == total:
            print(f"{done}/{total} records", end="", file=sys.stderr, flush=True)

    summary = evaluate_run(args.run, split=args.split, base=args.base, batch_size=args.batch_size,
                           limit=args.limit, device=args.device, max_new_tokens=args.max_new_tokens,
                           progress=progress)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(file=sys.stderr)
        print(format_summary(summary))
        rows, summ = eval_paths(args.run, args.split)
        print(f"wrote {rows} and {summ}")
    return 0
