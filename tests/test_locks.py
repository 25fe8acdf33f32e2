"""One writer per run folder: the OS lock of ``trainers.locks``, and the trainer refusing a run
folder that another live process writes while taking over the lock of a killed one."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from trainers import locks
from trainers import train as train_lib

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
HOLD = ("import sys, time; from trainers import locks\n"
        "with locks.exclusive(sys.argv[1], 'the test folder'):\n"
        "    print('held', flush=True); time.sleep(600)\n")


def hold_in_another_process(lock: Path) -> subprocess.Popen:
    """A process that takes ``lock`` and keeps it until killed (returns once it holds it)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], cwd=REPO, env=ENV,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_holder_is_refused_with_the_first_ones_pid_host_and_start_time(tmp_path):
    lock = tmp_path / ".lock"
    with locks.exclusive(lock, "the folder"):
        with pytest.raises(locks.Busy) as refused:
            with locks.exclusive(lock, "the folder"):
                pass
    signed = json.loads(lock.read_text())
    assert signed["pid"] == os.getpid() and signed["host"] and signed["started"]
    message = str(refused.value)
    assert message.startswith("the folder is in use by ")
    assert f"pid {os.getpid()} on {signed['host']} since {signed['started']}" in message
    assert "\n" not in message


def test_the_lock_is_free_again_once_released(tmp_path):
    lock = tmp_path / ".lock"
    with locks.exclusive(lock, "the folder"):
        pass
    with locks.exclusive(lock, "the folder"):
        assert lock.exists()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    lock = tmp_path / ".lock"
    holder = hold_in_another_process(lock)
    try:
        with pytest.raises(locks.Busy, match=f"pid {holder.pid} "):
            with locks.exclusive(lock, "the folder"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    with locks.exclusive(lock, "the folder"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_waiting_writer_gets_the_lock_when_the_holder_lets_go(tmp_path):
    lock, order = tmp_path / ".lock", []

    def wait_then_write():
        with locks.exclusive(lock, "the ledger", wait=True):
            order.append("waiter")

    with locks.exclusive(lock, "the ledger"):
        waiter = threading.Thread(target=wait_then_write)
        waiter.start()
        time.sleep(0.3)
        order.append("holder")
    waiter.join(10)
    assert order == ["holder", "waiter"]


def base(out):
    return ["--model", "resnet8", "--dataset", "synthetic", "--epochs", "1", "--batch-size",
            "32", "--train-size", "64", "--test-size", "32", "--out", str(out)]


@pytest.mark.slow
def test_a_trainer_refuses_a_run_folder_in_use_and_takes_over_a_killed_writers(
        tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = hold_in_another_process(out / train_lib.LOCK)
    try:
        code = train_lib.main(base(out) + ["--seed", "1"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("error: run folder ")
        assert f"is in use by pid {holder.pid} on " in err and "Traceback" not in err
        assert not (out / "config.json").exists()  # nothing of the refused run was written
    finally:
        holder.send_signal(signal.SIGKILL)  # as kill -9 or a crash would end a writer
        holder.wait(30)
    assert train_lib.main(base(out)) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 0
