"""Ctrl-C during a run: only the main process handles it (one clear line, resumable); the pool
workers of deid_tool and --verify print no "Process ForkPoolWorker-N" tracebacks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deidkit.export import STATE_NAME, WORKER_KILL_HOOK
from deidkit.synth import make_export

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups (POSIX) needed for Ctrl-C")


def interrupt_when(cmd: list[str], ready, env: dict[str, str]) -> tuple[int, str]:
    """Start cmd in its own process group, wait until ready(), then send SIGINT to the whole
    group as a terminal's Ctrl-C does; (exit status, stdout + stderr)."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(600):
            if ready() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out.decode("utf-8", "replace")


def test_ctrl_c_during_a_run_prints_no_worker_tracebacks_and_the_run_resumes(tmp_path):
    source = tmp_path / "EXPORT"
    make_export(source, instances_per_series=6, image_size=32)
    out, key = tmp_path / "OUT", tmp_path / "site.key"
    journal = tmp_path / "OUT_HOSPITAL_ONLY" / STATE_NAME
    cmd = [sys.executable, str(ROOT / "deid_tool.py"), str(source), "--out", str(out), "--yes", "--key", str(key),
           "--workers", "2"]
    env = dict(os.environ)
    env[WORKER_KILL_HOOK] = f"{tmp_path}:F000030/hang"  # one worker stays busy: the run is still going

    def some_files_done() -> bool:
        return journal.exists() and len(journal.read_text(encoding="utf-8", errors="replace").splitlines()) > 5

    code, text = interrupt_when(cmd, some_files_done, env)
    assert "Traceback" not in text and "PoolWorker" not in text, text
    assert "stopped by the user" in text and code != 0
    env.pop(WORKER_KILL_HOOK)
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=300,
                          check=False)
    assert done.returncode in (0, 1), done.stdout.decode() + done.stderr.decode()
    assert not (out / ".deid_partial").exists() or not any((out / ".deid_partial").iterdir())


SLOW_VERIFY = """
import sys, time
import deidkit.verify.delivery as delivery
real = delivery.check_file
def slow(path, *rest):
    if path.name.startswith("IMG_00002"):
        time.sleep(120)  # a worker stays busy: the check is still going
    return real(path, *rest)
delivery.check_file = slow
from deidkit import cli_deid
sys.exit(cli_deid.main(sys.argv[1:]))
"""


def test_ctrl_c_during_verify_prints_no_worker_tracebacks(tmp_path):
    source = tmp_path / "EXPORT"
    make_export(source, instances_per_series=6, image_size=32)
    out, key = tmp_path / "OUT", tmp_path / "site.key"
    subprocess.run([sys.executable, str(ROOT / "deid_tool.py"), str(source), "--out", str(out), "--yes", "--key",
                    str(key)], stdin=subprocess.DEVNULL, capture_output=True, timeout=300, check=False)
    cmd = [sys.executable, "-c", SLOW_VERIFY, "--verify", str(out), "--workers", "2"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), DEIDKIT_TEST_PROGRESS="1")
    started = time.monotonic()
    code, text = interrupt_when(cmd, lambda: time.monotonic() - started > 3.0, env)
    assert "Traceback" not in text and "PoolWorker" not in text, text
    assert "stopped by the user" in text and code == 2


CTRL_C_IN_A_FORK_HOOK = """
import os, signal, sys, time
from pathlib import Path
import deidkit.verify.delivery as delivery
from deidkit import guidelines as gl
real = delivery.check_file
def slow(path, *rest):
    if path.name == "f07.txt":
        time.sleep(90)  # a worker stays busy: the check is still going
    return real(path, *rest)
delivery.check_file = slow
# Ctrl-C landing while the pool forks a worker: raised inside a fork hook, Python would print
# "Exception ignored" and drop the KeyboardInterrupt, and the check would go on waiting
os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), signal.SIGINT))
folder = Path(sys.argv[1])
items = [(p, p.name) for p in sorted(folder.iterdir())]
try:
    delivery.check_files(items, gl.load(), False, jobs=2)
    print("checked to the end")
except KeyboardInterrupt:
    print("stopped by the user")
"""


def test_ctrl_c_that_lands_in_a_fork_hook_still_stops_the_check(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i:02d}.txt").write_text("not DICOM", encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_A_FORK_HOOK, str(tmp_path)], capture_output=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), stdin=subprocess.DEVNULL, timeout=60, check=False)
    out = done.stdout.decode() + done.stderr.decode()
    assert "stopped by the user" in out and "checked to the end" not in out, out
