"""Issue 27, peer feature b: the Playground's logic (studio/playground_logic.py). A free prompt about
an image to a base model or a finished run: the raw answer, and the structure when it parses (the
run's own task, or the open dataset's for a base model), on the engine Compare uses."""
from __future__ import annotations

import pytest

from core.errors import StudioError
from core.tasks import get_task
from studio import playground_logic as G
from studio.common import make_state
from tests.conftest import key_image
from test_infer import TARGET_A


@pytest.fixture(scope="module")
def state_and_run(trained_run, tmp_path_factory, demo_model_path):
    import torch

    torch.set_num_threads(1)
    ws = tmp_path_factory.mktemp("playground") / "workspace"
    with pytest.MonkeyPatch.context() as mp:
        state = make_state(ws)  # sets TRINITY_WORKSPACE for the run lookups
        run = trained_run(TARGET_A, seed=1, into=state.runs_dir / "keys-a", model_id=str(demo_model_path))
        mp.setenv("TRINITY_WORKSPACE", str(ws))
        yield state, run, str(demo_model_path)


def test_targets_are_bases_then_finished_runs(state_and_run):
    state, run, _ = state_and_run
    choices = G.targets(state, ["demo"])
    assert choices[0] == ("base · demo", "base:demo")
    assert any(v == str(run) and label.startswith("run · keys-a") for label, v in choices)


def test_a_run_answers_and_its_answer_parses(state_and_run):
    state, run, _ = state_and_run
    keys = get_task("keys")
    assert G.task_prompt(str(run)) == keys.prompt({"fields": {}})
    out = G.ask(state, str(run), key_image(90), G.task_prompt(str(run)), max_new_tokens=40)
    assert out["text"] == TARGET_A and out["parsed"] == keys.parse(TARGET_A).data
    assert "parses" in out["verdict"] and "does not" not in out["verdict"] and out["title"].startswith("run · keys-a")


def test_a_free_prompt_to_the_base_gives_its_raw_answer(state_and_run):
    state, _, base = state_and_run
    out = G.ask(state, "base:" + base, key_image(90), "What do you see?", dataset_task=get_task("keys"),
                max_new_tokens=12)
    assert out["text"] and out["parsed"] is None and "does not parse" in out["verdict"]
    raw = G.ask(state, "base:" + base, key_image(90), "What do you see?", max_new_tokens=12)  # no dataset open
    assert raw["text"] == out["text"] and "no task to parse" in raw["verdict"]  # greedy: the same answer


def test_bad_asks_say_what_to_do(state_and_run, tmp_path):
    state, run, base = state_and_run
    for args, says in [((None, key_image(), "hi"), "Pick a base model or a run"),
                       (("base:" + base, None, "hi"), "No image yet"),
                       (("base:" + base, key_image(), "   "), "The prompt is empty"),
                       (("base:" + base, key_image(), "x" * 5000), "characters long"),
                       ((str(tmp_path / "gone"), key_image(), "hi"), "not found")]:
        with pytest.raises(StudioError, match=says):
            G.ask(state, *args)
    with pytest.raises(StudioError, match="No task to take a prompt from"):
        G.task_prompt("base:demo")
