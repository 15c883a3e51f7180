"""Safe defaults: no remote code, only safetensors from folders we did not write, the HF token never
shown, uploaded file names never used as paths, the studio bound to loopback unless asked.
(app.settings' flag rules are in test_studio.py; here the real process is checked.)"""
from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.dataset import Dataset
from core.errors import StudioError

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
KEYS = ROOT / "assets" / "demo" / "keys"
SECRET = "hf_FAKEtoken0123456789abcdefSECRET"
SOURCES = sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("studio/**/*.py"), ROOT / "app.py"])
# classes whose from_pretrained reads model weights (processors and tokenizers read no pickles)
WEIGHT_LOADERS = ("AutoModel", "ForConditionalGeneration", "ForCausalLM", "FastVisionModel", "FastModel")


def _calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, parents


def _truthy(node) -> bool:
    return not (isinstance(node, ast.Constant) and node.value is False)


def test_trust_remote_code_is_never_on():
    found = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for node, _ in _calls(path):
            for kw in node.keywords:
                if kw.arg == "trust_remote_code" and _truthy(kw.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        tree = ast.parse(text)
        for node in ast.walk(tree):  # {"trust_remote_code": True} handed over as **kwargs
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if isinstance(k, ast.Constant) and k.value == "trust_remote_code" and _truthy(v):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
    from core import models
    assert models._hub_kwargs()["trust_remote_code"] is False


def _enclosing_function_source(path: Path, node, parents) -> str:
    src = path.read_text(encoding="utf-8")
    while node in parents and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node = parents[node]
    return ast.get_source_segment(src, node) or ""


def _weight_loading_calls():
    for path in SOURCES:
        for node, parents in _calls(path):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "from_pretrained":
                owner = ast.unparse(f.value)
                if any(w in owner for w in WEIGHT_LOADERS):
                    yield path, node, parents


def test_every_model_weight_load_insists_on_safetensors():
    """A folder anyone could have written (a download, the workspace) must not unpickle weights."""
    missing = []
    for path, node, parents in _weight_loading_calls():
        direct = any(kw.arg == "use_safetensors" and isinstance(kw.value, ast.Constant) and kw.value.value is True
                     for kw in node.keywords)
        spread = [kw.value.id for kw in node.keywords if kw.arg is None and isinstance(kw.value, ast.Name)]
        body = _enclosing_function_source(path, node, parents)
        via_kwargs = any("use_safetensors=True" in body or '"use_safetensors": True' in body for _ in spread)
        if not (direct or via_kwargs) and "FastVisionModel" not in ast.unparse(node.func):
            missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missing == [], "from_pretrained without use_safetensors=True: " + ", ".join(missing)


class _Payload:
    """Unpickling this runs `touch MARKER`: what a hostile pytorch_model.bin can do."""
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_bin(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump({"weight": _Payload(marker)}, f)


def test_a_pickled_model_folder_is_refused_and_never_unpickled(demo_model_path, tmp_path):
    from core import models

    folder = tmp_path / "downloaded"
    shutil.copytree(demo_model_path, folder)
    for f in folder.glob("*.safetensors*"):
        f.unlink()
    marker = tmp_path / "pwned"
    _hostile_bin(folder / "pytorch_model.bin", marker)
    with pytest.raises(StudioError) as e:
        models.load_model(str(folder), device="cpu")
    assert "Could not load" in e.value.message or "safetensors" in e.value.message
    assert not marker.exists()


@pytest.fixture(scope="module")
def demo_engine(demo_model_path):
    import torch
    torch.set_num_threads(1)
    from core.infer import Engine
    return Engine(str(demo_model_path), device="cpu")


def _hostile_adapter(tmp_path: Path, demo_model_path: Path) -> tuple[Path, Path]:
    adir = tmp_path / "adapter"
    adir.mkdir()
    (adir / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": None, "r": 4, "lora_alpha": 4, "target_modules": ["q_proj"],
        "base_model_name_or_path": str(demo_model_path)}))
    marker = tmp_path / "pwned"
    _hostile_bin(adir / "adapter_model.bin", marker)
    return adir, marker


def test_a_pickled_adapter_never_runs_code(demo_engine, demo_model_path, tmp_path):
    adir, marker = _hostile_adapter(tmp_path, demo_model_path)
    with pytest.raises(Exception):
        demo_engine.add_adapter(adir)
    assert not marker.exists()  # PEFT unpickles with weights_only=True


def test_a_pickled_adapter_is_refused_with_a_clear_message(demo_engine, demo_model_path, tmp_path):
    adir, marker = _hostile_adapter(tmp_path, demo_model_path)
    with pytest.raises(StudioError, match="safetensors"):
        demo_engine.add_adapter(adir)


# ---- the HF token ------------------------------------------------------------------------------
def _all_text(folder: Path) -> str:
    out = []
    for p in folder.rglob("*"):
        if p.is_file():
            out.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(out)


LEAKY_FAILURE = r"""
import sys, os, trl
def leak(self, *args, **kwargs):  # a library error that quotes the request it made, token and all
    raise RuntimeError("401 Client Error for https://huggingface.co/api (Authorization: Bearer "
                       + os.environ["HF_TOKEN"] + ")")
trl.SFTTrainer.training_step = leak
from core.__main__ import main
sys.exit(main(["train", "--run", sys.argv[1], "--no-progress"]))
"""


def test_hf_token_never_reaches_events_logs_or_messages(workspace, monkeypatch):
    from core import models
    from core.training.config import default_config
    from core.training.events import last_of, read_events
    from core.training.hardware import CPU_ONLY
    from core.training.runs import create_run, run_status, start_run_subprocess

    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = default_config("demo", CPU_ONLY, dataset=str(KEYS), max_steps=2, logging_steps=1, eval_split="",
                         batch_size=2)
    ok = create_run(cfg, run_id="token-ok")
    proc = start_run_subprocess(ok)  # the UI's way: log.txt gets all of stdout and stderr
    assert proc.wait(timeout=300) == 0, (ok / "log.txt").read_text()[-2000:]
    assert last_of(read_events(ok), "end")["status"] == "completed"
    assert SECRET not in _all_text(ok)

    bad = create_run(cfg, run_id="token-leaky-error")
    env = dict(os.environ, HF_TOKEN=SECRET)
    r = subprocess.run([sys.executable, "-c", LEAKY_FAILURE, str(bad)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    end = last_of(read_events(bad), "end")
    assert end["status"] == "failed" and "Authorization: Bearer ***" in end["error"]
    assert SECRET not in _all_text(bad) and SECRET not in json.dumps(run_status(bad))

    # a gated model: the message tells what to do and does not echo the token
    from huggingface_hub.errors import GatedRepoError
    import httpx
    resp = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co/google/gemma-3-4b-it"))
    err = models.hub_error("google/gemma-3-4b-it", GatedRepoError(f"403 gated (token {SECRET})", response=resp))
    assert "gated model" in err.message and "No HF_TOKEN" not in err.message
    assert SECRET not in err.message + err.hint


def _api_client(provider):
    from fastapi.testclient import TestClient
    from core.api import create_api
    return TestClient(create_api(provider), raise_server_exceptions=False)


def _png() -> bytes:
    return (CORPUS / "images" / "grey16.png").read_bytes()


def test_api_server_error_does_not_echo_the_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)

    def provider(task):
        raise RuntimeError(f"401 for https://huggingface.co (Authorization: Bearer {SECRET})")

    r = _api_client(provider).post("/api/v1/keys/analyze", files={"image": ("k.png", _png())})
    assert r.status_code == 500 and SECRET not in r.text


# ---- uploaded names are never paths ------------------------------------------------------------
HOSTILE = ["..%2f..%2fevil.png", "; rm -rf ~ ;.png", "$(touch pwned).png", "CON.png", "\u202egnp.exe.png",
           "-rf.png", " .png"]


def test_hostile_upload_names_become_content_addresses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for i, name in enumerate(HOSTILE):
        shutil.copy(CORPUS / "images" / ("exif_rotated.jpg" if i % 2 else "cmyk.jpg"), uploads / name)
    nested = uploads / ".." / "uploads" / HOSTILE[0]  # a path with ".." in it, as a browser might send
    ds = Dataset.create(tmp_path / "ds", "keys")
    before = {p for p in tmp_path.rglob("*")}
    rec, _ = ds.add_image(nested)
    for name in HOSTILE:
        ds.add_image(uploads / name)
    made = {p for p in tmp_path.rglob("*")} - before
    images = {p.name for p in made if p.parent == ds.path / "images"}
    assert len(images) == 2 and all(len(n) == len("0123456789abcdef.png") for n in images)
    assert all(p.parent in (ds.path, ds.path / "images") for p in made), made
    assert not (tmp_path / "pwned").exists()
    for r in ds.records():
        assert r["image"] == f"images/{r['id']}.png" and not any(h in json.dumps(r) for h in HOSTILE[1:4])


def test_api_ignores_the_upload_file_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def provider(task):  # no model loaded: the request is refused after the image was read
        raise StudioError("Nothing is loaded in this test.", "Start with a run.")

    c = _api_client(provider)
    for name in ("../../../../tmp/trinity-api-pwned.png", "/tmp/trinity-api-pwned.png", "..\\..\\x.png"):
        r = c.post("/api/v1/keys/analyze", files={"image": (name, _png())})
        assert r.status_code == 503 and "Nothing is loaded" in r.json()["error"]
    assert not Path("/tmp/trinity-api-pwned.png").exists() and list(tmp_path.iterdir()) == []


def test_demo_mode_keeps_users_inside_the_workspace(tmp_path):
    from studio.common import make_state, open_dataset
    from studio.tabs.datasets import create_dataset, import_into

    state = make_state(tmp_path / "ws", demo_mode=True)
    outside = Dataset.create(tmp_path / "outside", "keys")
    with pytest.raises(StudioError, match="only opens datasets inside its workspace"):
        open_dataset(state, str(outside.path))
    inside_ds = create_dataset(state.datasets_dir, "mine", "keys")
    with pytest.raises(StudioError, match="Importing from a server folder is disabled"):
        import_into(inside_ds, [], "/etc", allow_server_path=not state.demo_mode)
    for name in ("../escape", "/etc/x", "..", ".hidden", "a/b"):
        with pytest.raises(StudioError, match="not a usable dataset name"):
            create_dataset(state.datasets_dir, name, "keys")
    assert not (tmp_path / "ws" / "escape").exists() and not (state.datasets_dir.parent / "escape").exists()
    from studio.train_logic import config_from_knobs  # noqa: F401 - its demo-mode refusal is in test_studio


# ---- the real process binds loopback ------------------------------------------------------------
def test_app_process_listens_on_loopback_only(tmp_path, start_studio):
    import psutil
    import requests

    env = {"GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", "HF_TOKEN": SECRET}
    with start_studio(tmp_path / "ws", env) as s:
        listening = [c.laddr for c in psutil.Process(s.proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(a.ip == "127.0.0.1" for a in listening), listening
        page = requests.get(s.url + "/", timeout=10)
        assert page.status_code == 200 and SECRET not in page.text
        assert SECRET not in requests.get(s.url + "/config", timeout=10).text
        port = s.url.rsplit(":", 1)[1]
    assert SECRET not in s.log.read_text()
    env = dict(os.environ, TRINITY_WORKSPACE=str(tmp_path / "ws"), **env)
    r = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--port", str(port)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Refusing to expose the studio (0.0.0.0)" in r.stderr
