"""Issue 27, peer feature a: a custom base model (a local folder or a hub id) is checked before
training: its family is read from config.json, and what cannot be trained gets a clear error (a
missing folder or file, another family, a text-only Gemma, a gated, missing or unreachable hub
model). The Train tab's field and the run's start go through the same check."""
from __future__ import annotations

import json
import shutil

import pytest

from core.errors import StudioError
from core.model_check import check_base_model, describe


@pytest.fixture
def folder(tmp_path, demo_model_path):
    """A copy of the shipped demo base (a real Gemma 3 vision model folder) to break in places."""
    return shutil.copytree(demo_model_path, tmp_path / "my-gemma")


def _config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def test_a_gemma3_folder_is_accepted_with_its_family_from_config(folder):
    info = check_base_model(str(folder))
    assert (info.id, info.family, info.hub_id, info.gpu_only) == (str(folder.resolve()), "gemma3", None, False)
    assert describe(info) == "Gemma 3 local folder, 2.3M parameters"
    assert check_base_model("demo").id == "demo"  # the registry as it is


@pytest.mark.parametrize("breakage,says", [
    (lambda p: _config(p, model_type="llama"), "holds a 'llama' model"),
    (lambda p: _config(p, model_type="gemma3_text"), "text-only model ('gemma3_text')"),
    (lambda p: _config(p, vision_config=None), "without a vision tower"),
    (lambda p: (p / "config.json").unlink(), "holds no config.json"),
    (lambda p: (p / "config.json").write_text("{not json"), "cannot be read as JSON"),
    (lambda p: [f.rename(f.with_suffix(".bin")) for f in p.glob("*.safetensors")], "no *.safetensors weights"),
    (lambda p: [(p / n).unlink() for n in ("tokenizer.json", "tokenizer.model")], "has no tokenizer"),
    (lambda p: (p / "processor_config.json").unlink(), "no image processor settings"),
])
def test_a_folder_that_cannot_be_trained_says_why(folder, breakage, says):
    breakage(folder)
    with pytest.raises(StudioError) as e:
        check_base_model(str(folder))
    assert says in e.value.message and e.value.hint


def test_paths_and_hub_ids(tmp_path, monkeypatch):
    with pytest.raises(StudioError, match="There is no folder"):
        check_base_model(str(tmp_path / "nowhere"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(StudioError, match="is a file, not a model folder"):
        check_base_model(str(tmp_path / "file.txt"))
    with pytest.raises(StudioError, match="No base model given"):
        check_base_model("  ")
    # offline (the tests run with HF_HUB_OFFLINE=1): the hub cannot be reached, and the error says what to do
    with pytest.raises(StudioError, match="cannot be reached") as e:
        check_base_model("google/gemma-3-4b-it-not-cached")
    assert "copy the model folder here" in e.value.hint


def test_hub_models_are_judged_by_their_config(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    import httpx

    def gated(repo, filename, token=None):
        url = f"https://huggingface.co/{repo}/resolve/main/{filename}"
        raise GatedRepoError(f"Access to model {repo} is restricted. You must have access to it (gated repo).",
                             response=httpx.Response(403, request=httpx.Request("GET", url)))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated)
    with pytest.raises(StudioError, match="gated model") as e:
        check_base_model("google/gemma-3-12b-it")
    assert "accept the licence" in e.value.hint and "HF_TOKEN" in e.value.hint

    def serve(model_type):
        def download(repo, filename, token=None):
            path = tmp_path / f"{model_type}.json"
            path.write_text(json.dumps({"model_type": model_type, "vision_config": {"model_type": "siglip"}}))
            return str(path)
        return download

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", serve("gemma3n"))
    info = check_base_model("acme/field-reader")  # the name says nothing; config.json says Gemma 3n
    assert (info.family, info.hub_id, info.gpu_only) == ("gemma3n", "acme/field-reader", True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", serve("qwen2_vl"))
    with pytest.raises(StudioError, match="holds a 'qwen2_vl' model"):
        check_base_model("acme/gemma-3-lookalike")  # a gemma-ish name does not make it one


def test_a_run_does_not_start_on_a_model_that_fails_the_check(folder, tmp_path):
    from core.dataset import Dataset
    from core.training.config import TrainConfig
    from studio import train_logic as T
    from studio.common import make_state

    state = make_state(tmp_path / "ws")
    ds = Dataset.create(tmp_path / "ws" / "datasets" / "d", "keys")
    _config(folder, model_type="llama")
    with pytest.raises(StudioError, match="holds a 'llama' model"):
        T.start(state, TrainConfig(model_id=str(folder), dataset=str(ds.path), task="keys"))
    assert not list(state.runs_dir.glob("*/config.json"))  # no run folder was made


def test_the_train_tab_field_checks_and_lists_the_model(folder):
    from studio.tabs.train import _model_choices, custom_model_html

    mid, msg = custom_model_html(str(folder))
    assert mid == str(folder.resolve()) and "✓ Gemma 3 local folder" in msg
    assert (f"my-gemma  ·  custom ({mid})", mid) in _model_choices(False, mid)
    assert _model_choices(False, "demo") == _model_choices(False)
    none, msg = custom_model_html(str(folder / "missing"))
    assert none is None and "There is no folder" in msg
