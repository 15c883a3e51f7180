"""One name rule (core.names) for datasets and runs, applied alike by the Datasets tab, the named API
endpoints and run creation, each with its own message."""
from __future__ import annotations

import pytest

from core.errors import StudioError
from core.names import MAX_LEN, is_valid_name

GOOD = ["mine", "keys-v2", "ui2sql_2026.01", "A", "9lives", "x" * MAX_LEN]
BAD = ["", "../escape", "/etc/x", "..", ".", ".hidden", "a/b", "a\\b", "-dash", "_under", "naïve",
       "sp ace", "x" * (MAX_LEN + 1), None, 7]


@pytest.mark.parametrize("name", GOOD)
def test_good_names(name):
    assert is_valid_name(name)


@pytest.mark.parametrize("name", BAD)
def test_bad_names(name):
    assert not is_valid_name(name)


def test_the_three_entry_points_share_the_rule(tmp_path):
    pytest.importorskip("gradio")
    from studio.api_endpoints import _name
    from studio.tabs.datasets import create_dataset

    longest = "d" * MAX_LEN  # was refused by the Datasets tab (64) while the API took 128
    assert create_dataset(tmp_path, longest, "keys").path.name == longest
    assert _name(longest, "dataset") == longest
    for name in ("d" * (MAX_LEN + 1), "../escape", "naïve"):
        with pytest.raises(StudioError, match="not a usable dataset name"):
            create_dataset(tmp_path, name, "keys")
        with pytest.raises(StudioError, match="is not a run name") as e:
            _name(name, "run")
        assert e.value.hint == "Give the run's folder name (letters, digits, . _ -)."
    assert sorted(p.name for p in tmp_path.iterdir()) == [longest]


def test_create_run_refuses_a_bad_name_and_writes_nothing(tmp_path, monkeypatch):
    from core.training.config import TrainConfig
    from core.training.runs import create_run, new_run_id

    monkeypatch.setenv("TRINITY_WORKSPACE", str(tmp_path))
    cfg = TrainConfig(model_id="demo", task="keys", dataset="")
    for name in ("../escape", "x" * (MAX_LEN + 1), "naïve"):
        with pytest.raises(StudioError, match="is not a usable run name") as e:
            create_run(cfg, run_id=name, check=False)
        assert e.value.hint == "Use letters, digits, '-', '_' and '.'."
    assert list(tmp_path.rglob("config.json")) == []
    long_model = TrainConfig(model_id="org/" + "m" * 300, task="keys", dataset="")
    assert is_valid_name(new_run_id(long_model))  # generated names obey the rule they are checked by


def test_runs_are_named_by_their_dataset():
    """Issue 27: runs were named <task>-<model> ("json-demo"), so runs of two datasets of one task
    looked the same in every run list."""
    from core.training.config import TrainConfig
    from core.training.runs import new_run_id

    a = new_run_id(TrainConfig(model_id="demo", task="json", dataset="/ws/datasets/receipts"))
    b = new_run_id(TrainConfig(model_id="demo", task="json", dataset="/ws/datasets/Water Meters"))
    assert a.startswith("receipts-demo-") and b.startswith("water-meters-demo-")
    again = {new_run_id(TrainConfig(model_id="demo", task="json", dataset="/ws/datasets/receipts")) for _ in range(3)}
    assert len(again) == 3 and all(is_valid_name(n) for n in again)  # still unique, still valid names
