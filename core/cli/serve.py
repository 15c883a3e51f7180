"""python -m core serve [--serve RUN ...] [--host 127.0.0.1] [--port 8000] [--auth USER:PASS]
[--api-key KEY]: the API alone (task routes, Ollama- and OpenAI-compatible endpoints)."""
from __future__ import annotations

import sys


def add_api_options(p) -> None:
    """Options app.py and `python -m core serve` share."""
    p.add_argument("--serve", "--run", dest="serve", action="append", default=[], metavar="RUN",
                   help="a finished run to serve (folder or run id; repeat for several: each answers under "
                        "its name, the last per task also under the task's name)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="accept 'Authorization: Bearer KEY' on the API (default: $TRINITY_API_KEY)")
    p.add_argument("--max-batch", type=int, default=8, help="requests answered by one generate call (default 8)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests waiting beyond this are refused with 503 + Retry-After (default 64)")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the API (/api/v1, Ollama /api/*, OpenAI /v1/*) without the studio UI")
    add_api_options(p)
    p.add_argument("--model", default="demo", help="base model for tasks without a run (default: the offline demo model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; another needs --auth, --api-key or --allow-remote)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="require HTTP Basic with this login")
    p.add_argument("--allow-remote", action="store_true", help="confirm binding a non-loopback address without auth")
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest accepted upload (default 10)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap on answer length (default: task presets)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--preload", action="store_true", help="load the models before serving instead of on first use")
    p.set_defaults(func=run)


def run(args) -> int:
    import uvicorn

    from core.api import DEFAULT_MAX_UPLOAD, ApiAuth, ServedModels, create_api
    from core.api.auth import api_key_from, parse_login, refuse_unsafe_bind
    from core.errors import StudioError

    login, key = parse_login(args.auth), api_key_from(args.api_key)
    refuse_unsafe_bind(args.host, login, key, args.allow_remote)
    if not 1 <= args.port <= 65535:
        raise StudioError(f"Port {args.port} is out of range.", "Use a port from 1 to 65535, e.g. 8000.")
    limit = int(args.max_upload_mb * 1024 * 1024) if args.max_upload_mb else DEFAULT_MAX_UPLOAD
    if limit < 1:
        raise StudioError("--max-upload-mb must be positive.", "e.g. --max-upload-mb 10")
    if args.max_batch < 1 or args.max_queue < 1:
        raise StudioError("--max-batch and --max-queue must be at least 1.", "e.g. --max-batch 8 --max-queue 64")
    provider = ServedModels(args.serve, base_model=args.model, device=args.device)
    if args.preload:
        for entry in provider.entries():
            provider.load(entry)
    app = create_api(provider, max_upload_bytes=limit, auth=ApiAuth(login, key), max_batch=args.max_batch,
                     max_queue=args.max_queue,
                     generation={"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else None)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not (login or key):
        print(f"warning: binding {args.host} without authentication (--allow-remote).", file=sys.stderr)
    for s in provider.status()["served"]:
        print(f"serving {s['name']}: {'run ' + s['run'] if s['run'] else 'base model'} on {s['base_model']}",
              file=sys.stderr)
    print(f"API on http://{args.host}:{args.port}/api/v1 (docs /api/v1/docs) · Ollama /api · OpenAI /v1"
          + (" · auth on" if login or key else ""), file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
