"""python -m core serve [--run RUN_DIR ...] [--host 127.0.0.1] [--port 8000]: the REST API alone."""
from __future__ import annotations

import sys

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the REST API (/api/v1) without the studio UI")
    p.add_argument("--run", action="append", default=[], metavar="RUN_DIR",
                   help="run whose adapter serves its task (repeat for keys and ui2sql); "
                        "tasks without a run are answered by --model")
    p.add_argument("--model", default="demo", help="base model for tasks without a run (default: the offline demo model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the API to the network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest accepted upload (default 10)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap on answer length (default: task presets)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--preload", action="store_true", help="load the models before serving instead of on first use")
    p.set_defaults(func=run)


def run(args) -> int:
    import uvicorn

    from core.api import DEFAULT_MAX_UPLOAD, TASKS, EngineProvider, create_api
    from core.errors import StudioError
    from core.infer import read_run_config

    provider = EngineProvider(base_model=args.model, device=args.device)
    for run_dir in args.run:
        task = read_run_config(run_dir).get("task")
        provider.configure(task, run_dir)
    if not 1 <= args.port <= 65535:
        raise StudioError(f"Port {args.port} is out of range.", "Use a port from 1 to 65535, e.g. 8000.")
    limit = int(args.max_upload_mb * 1024 * 1024) if args.max_upload_mb else DEFAULT_MAX_UPLOAD
    if limit < 1:
        raise StudioError("--max-upload-mb must be positive.", "e.g. --max-upload-mb 10")
    if args.preload:
        for task in TASKS:
            provider(task)
    app = create_api(provider, max_upload_bytes=limit,
                     generation={"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else None)
    if args.host not in LOOPBACK:
        print(f"warning: binding {args.host}: the API is reachable from other machines and has no "
              "authentication.", file=sys.stderr)
    for task, st in provider.status().items():
        print(f"{task}: {'run ' + st['run'] if st.get('run') else 'base model ' + str(st.get('base_model'))}",
              file=sys.stderr)
    print(f"API on http://{args.host}:{args.port}/api/v1 (docs: /api/v1/docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
