"""Run-folder helpers that lean on libraries: the job's pid check (psutil), the FSDP launch file
(yaml, read back by accelerate's own config loader), and the CLI's command table."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest


def test_pid_check_tells_a_live_job_from_a_zombie_a_stranger_and_nothing():
    from core.training.runs import _pid_alive

    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "train"])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _pid_alive(job.pid)
        assert not _pid_alive(stranger.pid)  # a recycled pid running something else
        job.kill()
        import psutil
        deadline = time.monotonic() + 30
        while psutil.Process(job.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)  # killed, not yet reaped below: a zombie that still holds its pid
        assert psutil.Process(job.pid).status() == psutil.STATUS_ZOMBIE
        assert not _pid_alive(job.pid)
    finally:
        for p in (job, stranger):
            p.kill()
            p.wait()
    assert not _pid_alive(job.pid)  # reaped: gone


def test_fsdp_file_reads_back_through_accelerate(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    from core.training.runs import FSDP_FILE, fsdp_config, write_fsdp_config

    path = write_fsdp_config(tmp_path, 4)
    assert path == tmp_path / FSDP_FILE
    text = path.read_text()
    assert text.startswith("# accelerate launch config written by Trinity Studio")
    import yaml
    assert yaml.safe_load(text) == fsdp_config(4)
    cfg = load_config_from_file(str(path))  # accelerate's loader, as `accelerate launch --config_file` does
    assert cfg.distributed_type == "FSDP" and cfg.num_processes == 4 and cfg.mixed_precision == "no"
    assert cfg.fsdp_config["fsdp_version"] == 2 and cfg.fsdp_config["fsdp_sync_module_states"] is True
    assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT" and cfg.use_cpu is False


def test_every_listed_command_has_its_module(capsys):
    from core.__main__ import COMMANDS, main

    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert all(name in usage for name in COMMANDS)


def test_a_missing_command_module_is_an_error_not_a_silent_skip(monkeypatch):
    import core.__main__ as cli

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, "no_such_command"])
    with pytest.raises(ModuleNotFoundError, match="core.cli.no_such_command"):
        cli.main(["--help"])
