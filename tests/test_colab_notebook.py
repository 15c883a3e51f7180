"""notebooks/colab_trinity_studio.ipynb: a valid nbformat 4 notebook that installs requirements-gpu.txt
from a clone and launches app.py with flags app.py really has (a share link only behind a login);
the README's GPU section points at it and leaves the two set-up commands alone."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NB = REPO / "notebooks" / "colab_trinity_studio.ipynb"


def _notebook() -> dict:
    nb = json.loads(NB.read_text(encoding="utf-8"))
    try:
        import nbformat
    except ImportError:  # the structure nbformat's v4 schema requires, checked by hand
        assert nb["nbformat"] == 4 and isinstance(nb["metadata"], dict)
        for cell in nb["cells"]:
            assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["metadata"], dict)
            assert isinstance(cell["source"], (str, list)) and isinstance(cell.get("id"), str)
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None
    else:
        nbformat.validate(nbformat.reads(NB.read_text(encoding="utf-8"), as_version=4))
    return nb


def _code(nb) -> str:
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_notebook_is_valid_and_installs_the_gpu_requirements():
    code = _code(_notebook())
    assert "git\", \"clone" in code and "pip install -q -r requirements-gpu.txt" in code
    assert (REPO / "requirements-gpu.txt").is_file()
    for cell in (c for c in _notebook()["cells"] if c["cell_type"] == "code"):
        # Python once IPython's ! and % lines are set aside (kept as `pass`, same indentation)
        src = "".join(cell["source"])
        py = "\n".join(re.sub(r"^(\s*)[!%].*$", r"\1pass", ln) for ln in src.splitlines())
        compile(py, cell["id"], "exec")


def test_launch_command_uses_real_flags_and_passes_the_safety_check():
    import app

    launches = [ln.strip()[1:] for ln in _code(_notebook()).splitlines() if re.match(r"\s*!python app\.py", ln)]
    assert len(launches) == 1
    argv = shlex.split(launches[0])[2:]
    assert "--share" in argv and "--auth" in argv
    # the notebook's {VARIABLES} stand for the values its settings cell gives them
    filled = [re.sub(r"\{LOGIN_USER\}:\{LOGIN_PASSWORD\}", "trinity:s3cret", a).replace("{WORKSPACE}", "/content/ws")
              for a in argv]
    assert not any("{" in a for a in filled), filled
    cfg = app.settings(app.parse_args(filled), env={})  # unknown flags would exit here
    assert cfg["share"] and cfg["auth"] == ("trinity", "s3cret") and cfg["workspace"] == "/content/ws"
    without_auth = [a for a in filled if a not in ("--auth", "trinity:s3cret")]
    with pytest.raises(SystemExit, match="share link without --auth"):
        app.settings(app.parse_args(without_auth), env={})
    with pytest.raises(SystemExit, match="share link without --auth"):  # a public link needs the login
        app.settings(app.parse_args([*without_auth, "--allow-remote"]), env={})


def test_readme_points_to_the_gpu_setup_and_keeps_two_setup_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"```bash\n(.*?)\n```", setup, re.S) == [
        "python -m pip install -r requirements.txt && python app.py",
        "python -m pip install -r requirements-dev.txt && python -m pytest -q"]
    gpu = text.split("## Run on a GPU", 1)[1].split("\n## ", 1)[0]
    assert "python -m pip install -r requirements-gpu.txt && python app.py" in gpu
    assert "notebooks/colab_trinity_studio.ipynb" in gpu
