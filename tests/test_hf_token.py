"""core.models.hf_token: the environment, then a .env file (python-dotenv), then `hf auth login`'s
stored token (huggingface_hub.get_token)."""
from __future__ import annotations

import pytest

from core import models


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    import huggingface_hub.constants as hc

    for key in models._TOKEN_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))  # no login on record
    monkeypatch.setattr(models, "REPO", tmp_path / "repo")  # and no .env in the checkout
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path


def test_no_token_anywhere_is_none(no_token):
    assert models.hf_token() is None


def test_the_login_token_is_used_when_nothing_else_is_set(no_token):
    login = no_token / "hf-home" / "token"
    login.parent.mkdir()
    login.write_text("hf_from_login\n")
    assert models.hf_token() == "hf_from_login"
    (no_token / "cwd" / ".env").write_text('HF_TOKEN="hf_from_dotenv"\n')
    assert models.hf_token() == "hf_from_dotenv"  # a .env beats the login


def test_repo_dotenv_and_environment_order(no_token, monkeypatch):
    (no_token / "repo").mkdir()
    (no_token / "repo" / ".env").write_text("# secrets\nexport HUGGING_FACE_HUB_TOKEN=hf_repo # comment\n")
    assert models.hf_token() == "hf_repo"
    (no_token / "cwd" / ".env").write_text("OTHER=1\nHF_TOKEN='hf_cwd'\n")
    assert models.hf_token() == "hf_cwd"  # the working folder's .env first
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert models.hf_token() == "hf_env"
