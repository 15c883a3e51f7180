"""python -m core export --run RUN --format adapter|merged|gguf [--quant f16|q8_0|q4_k_m] [--out DIR]"""
from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run: PEFT adapter, merged 16-bit model, or GGUF (+ mmproj, Modelfile)")
    p.add_argument("--run", required=True, help="run folder, or a run id under workspace/runs")
    p.add_argument("--format", required=True, choices=["adapter", "merged", "gguf"], dest="fmt",
                   help="adapter: PEFT folder; merged: adapter merged into the 16-bit base; gguf: llama.cpp files")
    p.add_argument("--quant", choices=["f16", "q8_0", "q4_k_m"], default=None,
                   help="GGUF only: type of the text model (default f16; the mmproj stays f16)")
    p.add_argument("--out", default=None, help="output folder, must not exist or be empty "
                                                "(default RUN/export/<format>[-quant])")
    p.add_argument("--no-verify", action="store_true",
                   help="GGUF only: skip answering demo images with llama.cpp and transformers")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from core.export import export_run

    def progress(fraction, message):
        pct = f"{fraction * 100:3.0f}%" if fraction is not None else "    "
        print(f"[{pct}] {message}", file=sys.stderr, flush=True)

    summary = export_run(args.run, args.fmt, args.out, quant=args.quant, progress=progress,
                         verify=not args.no_verify)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"exported {summary['run']} as {summary['format']} to {summary['out_dir']}")
    print("files: " + ", ".join(summary["files"]))
    if summary["format"] == "gguf":
        for key in ("gguf", "mmproj"):
            info = summary[key]
            print(f"{key}: {info['file']} architecture={info['architecture']} tensors={info['n_tensors']}")
        ver = summary["verification"]
        if ver.get("ran"):
            for row in ver["answers"]:
                print(f"llama.cpp answer: {row['llama_cpp_text']!r} "
                      f"({'same tokens as' if row['equal'] else 'differs from'} transformers' greedy answer)")
        else:
            print(f"not verified with llama.cpp: {ver.get('reason')}")
        print("Ollama (not run here):")
        for cmd in summary["ollama"]["commands"]:
            print(f"  {cmd}")
        print(f"note: {summary['ollama']['note']}")
    print(summary["verdict"]["text"])  # last: what the export proves
    return 0
