"""One trainer per run folder (fr.engine.lock), and fr.train leaving a run alone that another process trains."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import fr.train
from fr.config import load_config
from fr.engine.lock import LOCK_FILE, RunBusy, holder, run_lock
from fr.results import run_id, runs_root
from records import tiny_overrides

TINY = tiny_overrides("lock_test", steps=2)


def test_a_second_holder_is_refused_at_once_and_told_who_holds_it(tmp_path):
    with run_lock(tmp_path):
        assert f"pid {os.getpid()} on " in (tmp_path / LOCK_FILE).read_text()
        with pytest.raises(RunBusy, match=rf"run {tmp_path.name} is being trained by another process "
                                          rf"\(pid {os.getpid()} on .*\); nothing was touched"):
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):  # released with the block
        assert holder(tmp_path).startswith(f"pid {os.getpid()} on ")
    assert holder(tmp_path) is None and (tmp_path / LOCK_FILE).read_text() == ""
    assert holder(tmp_path / "nowhere") is None


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from fr.engine.lock import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=f"pid {p.pid} on "):
            with run_lock(tmp_path):
                pass
        assert holder(tmp_path).startswith(f"pid {p.pid} on ")
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert holder(tmp_path) is None  # its line is still in the file, but the process is gone
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the lock with the process
        try:
            with run_lock(tmp_path):
                break
        except RunBusy:
            assert time.monotonic() < deadline, "the killed holder's lock was not released"
            time.sleep(0.05)


def test_training_a_run_another_process_holds_touches_nothing(tmp_path):
    cfg = load_config(None, TINY)
    run_dir = runs_root(tmp_path) / run_id(cfg)
    run_dir.mkdir(parents=True)
    with run_lock(run_dir):
        with pytest.raises(RunBusy, match="is being trained by another process"):
            fr.train.run(cfg, results_root=tmp_path)
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]  # no config, log or checkpoint written
    rec = fr.train.run(cfg, results_root=tmp_path)  # once released, it trains
    assert rec.complete


def test_the_command_exits_3_naming_the_holder(tmp_path, capsys):
    cfg = load_config(None, TINY)
    run_dir = runs_root(tmp_path) / run_id(cfg)
    run_dir.mkdir(parents=True)
    with run_lock(run_dir):
        rc = fr.train.main(["--config", str(_write(tmp_path, cfg)), "--results", str(tmp_path)])
    assert rc == 3 and "fr.train: run " in capsys.readouterr().err


def _write(tmp_path, cfg):
    from fr.config import dump_yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(dump_yaml(cfg))
    return path


def test_a_run_folder_that_cannot_be_made_is_named_in_the_error(tmp_path):
    cfg = load_config(None, TINY)
    (tmp_path / "runs").write_text("a file where the runs folder should be")
    with pytest.raises(RuntimeError, match=rf"cannot prepare run folder .*{run_id(cfg)}"):
        fr.train.run(cfg, results_root=tmp_path)


def test_a_holder_whose_pid_now_names_another_process_is_not_shown(tmp_path):
    with run_lock(tmp_path):
        line = (tmp_path / LOCK_FILE).read_text()
    assert ", process start " in line or not os.path.exists(f"/proc/{os.getpid()}/stat")
    if ", process start " not in line:
        pytest.skip("no /proc here: process start times cannot be read")
    # this process's pid with another start time: a dead holder whose pid was reused (by us)
    (tmp_path / LOCK_FILE).write_text(line.rsplit("process start ", 1)[0] + "process start 1\n")
    assert holder(tmp_path) is None
    (tmp_path / LOCK_FILE).write_text(line)  # the right start time: alive
    assert holder(tmp_path) == line.strip()
