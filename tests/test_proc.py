"""The runner against real child processes: timeouts, process groups, redaction, dry-run (F57, F67, F69, F70)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import os
import sys
import time

import pytest

from llmd import proc, redact
from llmd.errors import CommandFailed, CommandTimeout, ExitCode, PrereqError
from llmd.proc import Cmd, Runner, Transcript

PY = sys.executable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_runs_argv_and_captures_output():
    r = Runner().run(Cmd((PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)")))
    assert r.ok and r.stdout == "out\n" and r.stderr == "err\n"


def test_nonzero_exit_raises_with_tail_and_code():
    with pytest.raises(CommandFailed) as err:
        Runner().run(Cmd((PY, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)")),
                     fail_code=ExitCode.DEPLOY_FAILED)
    assert err.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "exit 3" in err.value.message and "boom" in err.value.message
    r = Runner().run(Cmd((PY, "-c", "import sys; sys.exit(4)")), check=False)
    assert r.returncode == 4 and not r.ok


def test_stdin_carries_secrets_not_argv():
    cmd = Cmd((PY, "-c", "import sys; print(len(sys.stdin.read()))"), stdin=b"s3cret-value")
    assert "s3cret" not in cmd.display() and "stdin: 12 bytes" in cmd.display()
    assert Runner().run(cmd).stdout.strip() == "12"


def test_timeout_kills_the_whole_group_including_grandchildren(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        Runner().run(Cmd((PY, "-c", script), timeout=1.0))
    assert time.monotonic() - started < 10
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert proc.live_children() == []


def test_child_ignoring_sigint_and_sigterm_is_killed(monkeypatch):  # F57
    monkeypatch.setattr(proc, "GRACE_INT_S", 0.3)
    monkeypatch.setattr(proc, "GRACE_TERM_S", 0.3)
    script = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    runner = Runner()
    p = runner.spawn(Cmd((PY, "-c", script)))
    assert p.stdout.readline().strip() == b"ready"
    started = time.monotonic()
    proc.stop_process(p, grace_int=0.3, grace_term=0.3)
    assert p.poll() is not None and time.monotonic() - started < 5
    assert p.pid not in proc.live_children()


def test_child_output_is_redacted_everywhere(tmp_path):  # F69
    redact.register("hf_canaryTOKEN0123456789abcd")
    lines = []
    transcript = Transcript(tmp_path)
    runner = Runner(transcript=transcript, echo=lines.append)
    r = runner.run(Cmd((PY, "-c", "import sys; print('token is hf_canaryTOKEN0123456789abcd', file=sys.stderr)")),
                   on_line=lines.append)
    assert "canary" not in r.stderr and "***" in r.stderr
    assert all("canary" not in line for line in lines)
    log = transcript.path
    assert log is not None and "canary" not in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_dry_run_starts_nothing(fp):  # F67: fp is strict, any Popen would fail the test
    runner = Runner(dry_run=True)
    r = runner.run(Cmd(("kubectl", "apply", "-f", "-"), mutates=True, stdin=b"x"))
    assert r.dry_run and r.ok
    assert [c.argv for c in runner.planned] == [("kubectl", "apply", "-f", "-")]
    assert len(fp.calls) == 0


def test_missing_tools_are_all_listed(monkeypatch, tmp_path):  # F11
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrereqError) as err:
        Runner().require_tools(["kubectl", "helm", "helmfile"])
    assert err.value.exit_code == ExitCode.PREREQ
    assert "kubectl, helm, helmfile" in err.value.message
    assert "helm.sh" in err.value.hint and "make tools" in err.value.hint


def test_a_missing_tool_set_by_its_variable_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMD_HELMFILE", str(tmp_path / "nope" / "helmfile"))
    with pytest.raises(PrereqError) as err:
        Runner().require_tools(["helmfile"])
    assert f"LLMD_HELMFILE={tmp_path}/nope/helmfile is not an executable file; fix or unset LLMD_HELMFILE" in (
        err.value.hint)


def test_tool_override_by_environment(monkeypatch):
    monkeypatch.setenv("LLMD_HELM", "/opt/helm3/helm")
    assert Runner().tool("helm") == "/opt/helm3/helm"
    assert Runner().tool("kubectl") == "kubectl"


def test_ctrl_c_stops_children_and_exits_130(tmp_path):  # F52/F55 at the runner level, through the real boundary
    import signal
    import subprocess

    pidfile = tmp_path / "child.pid"
    driver = tmp_path / "driver.py"
    child_code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    driver.write_text(
        "import sys\n"
        "from llmd.cli import app, main\n"
        "from llmd.proc import Cmd, Runner\n"
        "@app.command('hang')\n"
        "def hang():\n"
        f"    Runner().run(Cmd(({PY!r}, '-c', {child_code!r}), timeout=60))\n"
        "main(sys.argv[1:])\n"
    )
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        pidfile.unlink(missing_ok=True)
        p = subprocess.Popen([PY, str(driver), "hang"], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pidfile.read_text())
        p.send_signal(sig)
        _, err = p.communicate(timeout=15)
        assert p.returncode == code, err
        assert "interrupted" in err
        assert not _alive(child)


def test_ctrl_c_between_fork_and_registration_never_orphans_the_child(monkeypatch):
    """The e2e Ctrl-C test caught helmfile outliving llmd: SIGINT landed after the fork, before `_register`.
    The signal is held until the child is registered, then delivered; the child is stoppable (not orphaned)."""
    import os
    import signal as sig

    from llmd import proc

    real_register = proc._register

    def register_after_a_ctrl_c(p):
        os.kill(os.getpid(), sig.SIGINT)  # the user presses Ctrl-C right now
        real_register(p)

    monkeypatch.setattr(proc, "_register", register_after_a_ctrl_c)
    runner = proc.Runner()
    with pytest.raises(KeyboardInterrupt):
        runner.run(proc.Cmd(("sleep", "30"), timeout=10))
    live = proc.live_children()
    assert len(live) == 1  # registered, so Ctrl-C handling and the atexit sweep reach it
    proc.kill_all_children()
    with pytest.raises(ProcessLookupError):
        os.kill(live[0], 0)
