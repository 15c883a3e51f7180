"""Trinity Studio: `python app.py [--host H] [--port 7860] [--share] [--auth user:pass] [--workspace DIR]
[--serve RUN ...] [--api-key KEY]`.

Serves the Gradio studio and the API (core/api/: task routes under /api/v1, Ollama's /api/*,
OpenAI's /v1/*) on one server; --auth guards both, and --api-key (or $TRINITY_API_KEY) adds a
bearer token for the API. Binds 127.0.0.1 unless asked; 0.0.0.0 or a share link need an explicit flag. On a Hugging Face Space (SPACE_ID
set) it binds 0.0.0.0:7860 in demo mode: the demo model only, bounded runs, no server paths.
"""
from __future__ import annotations

import os

# Before gradio is imported: no version check, no telemetry; the page must work offline.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402

LOOPBACK = ("127.0.0.1", "localhost", "::1")
QUEUE_LIMIT = 4          # handlers running at once; model work has its own limit of 1
QUEUE_MAX = 64           # waiting requests beyond this are refused cleanly


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the studio "
                                                "to the network and needs --allow-remote)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="create a public Gradio share link (needs --auth)")
    p.add_argument("--allow-remote", action="store_true", help="confirm binding a non-loopback address or sharing")
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="require this login (Gradio auth)")
    p.add_argument("--workspace", default=None, help="workspace folder (default ./workspace or $TRINITY_WORKSPACE)")
    p.add_argument("--demo-mode", action="store_true", help="the Space's restrictions, also off a Space")
    from core.cli.serve import add_api_options

    add_api_options(p)
    return p.parse_args(argv)


def settings(args: argparse.Namespace, env=None) -> dict:
    """Where to bind and in which mode. Raises SystemExit with a message for unsafe requests."""
    env = os.environ if env is None else env
    on_space = bool(env.get("SPACE_ID"))
    host = args.host or ("0.0.0.0" if on_space else "127.0.0.1")
    port = args.port or int(env.get("PORT", 0) or 0) or 7860
    from core.api.auth import api_key_from, parse_login

    auth, api_key = parse_login(args.auth), api_key_from(getattr(args, "api_key", None), env)
    remote = host not in LOOPBACK or args.share
    # A share link is a public URL: anyone holding it would get the studio, so it needs the login
    # (--allow-remote confirms a bind on one's own network, not publishing to the internet).
    if args.share and not (auth or on_space):
        raise SystemExit("Refusing to create a public share link without --auth USER:PASS.")
    # An API key guards the API only; the UI beside it needs the login.
    if remote and not (on_space or args.allow_remote or auth):
        raise SystemExit(f"Refusing to expose the studio ({'share link' if args.share else host}) without "
                         "--allow-remote or --auth USER:PASS" + (" (--api-key guards the API, not the UI)."
                                                                 if api_key else "."))
    if not 1 <= port <= 65535:
        raise SystemExit(f"Port {port} is out of range.")
    return {"host": host, "port": port, "share": args.share, "auth": auth, "demo_mode": on_space or args.demo_mode,
            "workspace": args.workspace, "api_key": api_key, "serve": list(getattr(args, "serve", []) or []),
            "max_batch": getattr(args, "max_batch", 8), "max_queue": getattr(args, "max_queue", 64)}


def create_server(cfg: dict):
    """(FastAPI app: the REST API with the studio mounted at /, the Blocks, the studio state)."""
    import gradio as gr

    from core.api import ApiAuth, ServedModels, create_api
    from core.errors import StudioError
    from studio.app import build_app, launch_kwargs
    from studio.common import make_state

    state = make_state(cfg["workspace"], demo_mode=cfg["demo_mode"])
    # One model cache with the Compare tab: a run served and compared is loaded once.
    try:
        state.served = ServedModels(cfg.get("serve") or [], base_model="demo", engines=state.engines,
                                    lock=state.engine_lock)
    except StudioError as e:
        raise SystemExit(f"--serve: {e.message} {e.hint}") from None
    blocks = build_app(state).queue(default_concurrency_limit=QUEUE_LIMIT, max_size=QUEUE_MAX)
    api = create_api(state.served, auth=ApiAuth(cfg["auth"], cfg.get("api_key")),
                     max_batch=cfg.get("max_batch", 8), max_queue=cfg.get("max_queue", 64))
    app = gr.mount_gradio_app(api, blocks, path="/", auth=cfg["auth"], allowed_paths=[str(state.workspace)],
                              footer_links=[], run_history=False, show_error=True, **launch_kwargs())
    return app, blocks, state


def main(argv=None) -> int:
    from core.quiet import silence_known_warnings

    silence_known_warnings()  # the server's own log (Compare, Evaluate load adapters in it)
    cfg = settings(parse_args(argv))
    if cfg["share"]:
        # A share link needs Gradio's own launcher. The REST API is left out there: Gradio's auth
        # does not cover it, and a public link must not serve models to anyone.
        from studio.app import build_app, launch_kwargs
        from studio.common import make_state

        state = make_state(cfg["workspace"], demo_mode=cfg["demo_mode"])
        blocks = build_app(state).queue(default_concurrency_limit=QUEUE_LIMIT, max_size=QUEUE_MAX)
        print("Share link: the REST API is not served (run `python -m core serve` locally for it).", flush=True)
        blocks.launch(server_name=cfg["host"], server_port=cfg["port"], share=True, auth=cfg["auth"],
                      allowed_paths=[str(state.workspace)], footer_links=[], **launch_kwargs())
        return 0
    import uvicorn

    app, _blocks, state = create_server(cfg)
    print(f"Trinity Studio: workspace {state.workspace}" + (" (demo mode)" if cfg["demo_mode"] else ""), flush=True)
    for s in state.served.status()["served"]:
        print(f"Serving {s['name']}: " + (f"run {s['run']}" if s["run"] else f"base model {s['base_model']}"), flush=True)
    print(f"Studio on http://{cfg['host']}:{cfg['port']}/ · API on /api/v1 (docs /api/v1/docs), Ollama /api, "
          "OpenAI /v1" + (" · API auth on" if cfg["auth"] or cfg.get("api_key") else ""), flush=True)
    uvicorn.run(app, host=cfg["host"], port=cfg["port"], log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
