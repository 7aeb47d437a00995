"""The one module that starts processes.

Every child: an argv tuple (never a shell), a wall-clock timeout, its own process group, output
redacted before it is shown or logged, and a line in the run transcript. On timeout or Ctrl-C the
whole group gets SIGINT, then SIGTERM, then SIGKILL. `--dry-run` is enforced here: nothing starts.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llmd.errors import CommandFailed, CommandTimeout, ExitCode, LlmdError, PrereqError
from llmd.redact import redact

DEFAULT_TIMEOUT = 120.0
GRACE_INT_S = 5.0  # after SIGINT, before SIGTERM
GRACE_TERM_S = 3.0  # after SIGTERM, before SIGKILL
# client-go's own log lines (`E1128 06:49:48.037258   15649 memcache.go:265] ...`): kubectl repeats one per
# API discovery retry before its one-line verdict, so an error tail would be nothing but these.
KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [\w.-]+:\d+\] ")

# `make tools` installs into the repo's .tools/bin, which llmd does not search: the hint says how to use it.
MAKE_TOOLS = ("`make tools` in the llmd checkout, then `export PATH=\"$PWD/.tools/bin:$PATH\"` "
              "(or LLMD_KUBECTL / LLMD_HELM / LLMD_HELMFILE=<path>)")
INSTALL_HINTS = {
    "kubectl": f"install kubectl >= 1.28: https://kubernetes.io/docs/tasks/tools/, or {MAKE_TOOLS}",
    "helm": f"install helm >= 3.12: https://helm.sh/docs/intro/install/, or {MAKE_TOOLS}",
    "helmfile": f"install helmfile >= 0.166: https://helmfile.readthedocs.io/, or {MAKE_TOOLS}",
}

# Environment variables that name an explicit binary for a tool.
TOOL_ENV = {"kubectl": "LLMD_KUBECTL", "helm": "LLMD_HELM", "helmfile": "LLMD_HELMFILE"}


@dataclass(frozen=True)
class Cmd:
    """A command to run. `mutates` marks commands that change a cluster (skipped in dry-run)."""

    argv: tuple[str, ...]
    mutates: bool = False
    stdin: bytes | None = field(default=None, repr=False)  # secrets travel here, never in argv
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None
    title: str = ""
    secret_output: bool = False  # stdout holds a secret (a token): kept out of the transcript and the -v echo

    def display(self) -> str:
        text = shlex.join(self.argv)
        if self.stdin is not None:  # what travels on stdin is not in argv: the title says what it is
            text += f" < (stdin: {len(self.stdin)} bytes, not shown)" + (f"  # {self.title}" if self.title else "")
        return redact(text)


@dataclass(frozen=True)
class CmdResult:
    cmd: Cmd
    returncode: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    dry_run: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 20) -> str:
        """The last lines of the error output for a message; client-go log lines are dropped when anything
        else was said (the transcript keeps everything)."""
        text = self.stderr.strip() or self.stdout.strip()
        said = text.splitlines()
        plain = [ln for ln in said if not KLOG_LINE.match(ln)]
        return "\n".join((plain or said)[-lines:])


# ---- process-group bookkeeping: what Ctrl-C and atexit must reap ----------------------------------

_live: dict[int, subprocess.Popen] = {}
_live_lock = threading.Lock()


def _register(p: subprocess.Popen) -> None:
    with _live_lock:
        _live[p.pid] = p


def _unregister(p: subprocess.Popen) -> None:
    with _live_lock:
        _live.pop(p.pid, None)


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    # Children lead their own group (start_new_session), so their pid is the pgid. Never signal
    # init's group or our own, whatever a caller hands us.
    if p.pid <= 1 or p.pid == os.getpgrp():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(p.pid, sig)


def stop_process(p: subprocess.Popen, *, grace_int: float = GRACE_INT_S, grace_term: float = GRACE_TERM_S) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the child's whole group. A second Ctrl-C kills at once."""
    try:
        for sig, grace in ((signal.SIGINT, grace_int), (signal.SIGTERM, grace_term)):
            if p.poll() is not None:
                break
            _signal_group(p, sig)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass  # second Ctrl-C: fall through to SIGKILL
    finally:
        # The leader may be gone while others in its group live on: always sweep the group.
        _signal_group(p, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.wait(timeout=2)
        _unregister(p)


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C / SIGTERM while a child is forked and registered: a KeyboardInterrupt between the fork and
    `_register` would orphan a child no stop or atexit sweep knows about (seen in the e2e Ctrl-C test: helmfile
    outliving llmd). The held signal is re-raised to the previous handler as soon as the child is registered."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run in the main thread only: nothing to hold here
        return
    held: list[int] = []

    def hold(signum, _frame) -> None:
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(held):
            signal.raise_signal(sig)


def kill_all_children() -> None:
    """Last resort (atexit, forced exit): SIGKILL every group we started."""
    with _live_lock:
        procs = list(_live.values())
    for p in procs:
        _signal_group(p, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.wait(timeout=1)
        _unregister(p)


def live_children() -> list[int]:
    with _live_lock:
        return [pid for pid, p in _live.items() if p.poll() is None]


atexit.register(kill_all_children)


# ---- the runner ------------------------------------------------------------------------------------


class Transcript:
    """Per-run command log: `<state>/runs/<timestamp>/commands.log`, created on first use, 0600."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._path: Path | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path | None:
        return self._path

    def write(self, text: str) -> None:
        if self.root is None:
            return
        with self._lock:
            if self._path is None:
                run_dir = self.root / "runs" / time.strftime("%Y%m%d-%H%M%S") / str(os.getpid())
                run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._path = run_dir / "commands.log"
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.close(fd)
            with open(self._path, "a", encoding="utf-8") as fh:
                fh.write(redact(text))
                if not text.endswith("\n"):
                    fh.write("\n")


class Runner:
    """Runs `Cmd`s. Planned (dry-run) commands are recorded in `planned` and never started."""

    def __init__(
        self,
        *,
        dry_run: bool = False,
        transcript: Transcript | None = None,
        echo: Callable[[str], None] | None = None,
        tools: Mapping[str, str] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        on_result: Callable[[CmdResult], None] | None = None,
    ) -> None:
        self.dry_run = dry_run
        self.transcript = transcript or Transcript(None)
        self.echo = echo
        self.on_result = on_result  # -v: each finished child's exit code, time and output
        self.default_timeout = default_timeout
        self.planned: list[Cmd] = []
        self._tools = dict(tools or {})
        for name, var in TOOL_ENV.items():
            if var in os.environ and name not in self._tools:
                self._tools[name] = os.environ[var]

    # -- tools

    def tool(self, name: str) -> str:
        """The argv[0] to use for a tool: an explicit override, or the bare name found on PATH."""
        return self._tools.get(name, name)

    def missing_tools(self, names: list[str]) -> list[str]:
        missing = []
        for name in names:
            exe = self.tool(name)
            found = shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) else None)
            if not found:
                missing.append(name)
        return missing

    def require_tools(self, names: list[str]) -> None:
        missing = self.missing_tools(names)
        if missing:
            lines = []
            for n in missing:
                var = TOOL_ENV.get(n, "")
                if n in self._tools and os.environ.get(var) == self._tools[n]:  # a wrong LLMD_<TOOL> override
                    lines.append(f"  {n}: {var}={self._tools[n]} is not an executable file; fix or unset {var}")
                else:
                    lines.append(f"  {n}: {INSTALL_HINTS.get(n, 'install it and put it on PATH')}")
            raise PrereqError(
                "missing required tool(s): " + ", ".join(missing),
                hint="\n".join(lines),
            )

    # -- running

    def _resolve(self, cmd: Cmd) -> list[str]:
        argv = list(cmd.argv)
        if argv and argv[0] in self._tools:
            argv[0] = self._tools[argv[0]]
        return argv

    def run(
        self,
        cmd: Cmd,
        *,
        check: bool = True,
        on_line: Callable[[str], None] | None = None,
        fail_code: ExitCode = ExitCode.INTERNAL,
    ) -> CmdResult:
        """Run to completion. `on_line` receives redacted output lines as they arrive."""
        shown = cmd.display()
        if self.dry_run:
            self.planned.append(cmd)
            return CmdResult(cmd, 0, dry_run=True)
        if self.echo:
            self.echo(shown)
        timeout = cmd.timeout if cmd.timeout is not None else self.default_timeout
        env = {**os.environ, **cmd.env} if cmd.env else None
        self.transcript.write(f"$ {shown}")
        started = time.monotonic()
        with interrupts_deferred():
            try:
                p = subprocess.Popen(
                    self._resolve(cmd),
                    stdin=subprocess.PIPE if cmd.stdin is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=cmd.cwd,
                    start_new_session=True,  # own process group: we decide how it is stopped
                )
            except FileNotFoundError as exc:
                raise PrereqError(
                    f"cannot run {cmd.argv[0]}: not found", hint=INSTALL_HINTS.get(cmd.argv[0])
                ) from exc
            _register(p)
        out_chunks: list[str] = []
        err_chunks: list[str] = []
        readers = [
            threading.Thread(target=_pump, args=(p.stdout, out_chunks, on_line), daemon=True),
            threading.Thread(target=_pump, args=(p.stderr, err_chunks, on_line), daemon=True),
        ]
        for t in readers:
            t.start()
        timed_out = False
        try:
            if cmd.stdin is not None and p.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    p.stdin.write(cmd.stdin)
                    p.stdin.close()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                stop_process(p)
        except KeyboardInterrupt:
            stop_process(p)
            raise
        finally:
            for t in readers:
                t.join(timeout=2)
            _unregister(p)
        result = CmdResult(
            cmd,
            p.returncode if not timed_out else -9,
            stdout=redact("".join(out_chunks)),
            stderr=redact("".join(err_chunks)),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
        )
        shown_result = dataclasses.replace(result, stdout="(stdout not shown: it holds a secret)\n") \
            if cmd.secret_output and result.stdout else result
        self.transcript.write(
            f"# exit {result.returncode} in {result.duration_s:.2f}s\n{shown_result.stdout}{result.stderr}"
        )
        if self.on_result is not None:
            self.on_result(shown_result)
        if timed_out:
            raise CommandTimeout(
                f"timed out after {timeout:.0f}s: {shown}",
                hint="raise --timeout, or check that the cluster is reachable",
                result=result,
                exit_code=fail_code,
            )
        if check and not result.ok:
            raise CommandFailed(
                f"command failed (exit {result.returncode}): {shown}\n{result.tail()}",
                result=result,
                exit_code=fail_code,
            )
        return result

    def spawn(self, cmd: Cmd) -> subprocess.Popen:
        """Start a long-lived child (port-forward) in its own group; stop it with `stop_process`."""
        with interrupts_deferred():
            p = self._start(cmd, "&", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _register(p)
        return p

    def spawn_detached(self, cmd: Cmd, log: Path) -> subprocess.Popen:
        """Start a supervised background process that outlives this command (the local platform's replicas and
        gateway): own session, stdout and stderr appended to `log`, not reaped at exit. Stop it with `stop_pid`."""
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(log, "ab") as out:
            return self._start(cmd, f">{log} 2>&1 &", stdout=out, stderr=subprocess.STDOUT)

    def _start(self, cmd: Cmd, shown_suffix: str, *, stdout, stderr) -> subprocess.Popen:
        """Echo, log and start a child that is not waited for, in its own session; refused in dry-run."""
        if self.dry_run:
            self.planned.append(cmd)
            raise LlmdError("internal: a long-lived command was spawned in dry-run")
        shown = cmd.display()
        if self.echo:
            self.echo(shown)
        self.transcript.write(f"$ {shown} {shown_suffix}")
        env = {**os.environ, **cmd.env} if cmd.env else None
        try:
            return subprocess.Popen(self._resolve(cmd), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                    env=env, cwd=cmd.cwd, start_new_session=True)
        except FileNotFoundError as exc:
            raise PrereqError(
                f"cannot run {cmd.argv[0]}: not found", hint=INSTALL_HINTS.get(cmd.argv[0])
            ) from exc


# ---- background processes recorded by pid (they outlive the command that started them) ---------------------------


def start_id(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/<pid>/stat), so a recycled pid is not taken for ours;
    None when the process is gone, a zombie, or /proc is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def own_children() -> set[int]:
    """Pids whose parent is this process (from /proc; empty without it): what a detached start may have created
    in the instant between the fork and its pid being recorded."""
    me = str(os.getpid())
    out: set[int] = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == me and fields[0] not in ("Z", "X"):
            out.add(int(entry))
    return out


def pid_alive(pid: int, expected_start: str | None = None) -> bool:
    _reap(pid)
    if pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # not ours
    if os.path.isdir("/proc"):
        current = start_id(pid)
        return current is not None and (expected_start is None or current == expected_start)
    return True


def _reap(pid: int) -> None:
    """Collect our own exited child (a detached process started by this very process, e.g. under tests)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, expected_start: str | None = None, *, grace: float = GRACE_TERM_S) -> bool:
    """SIGTERM the process group led by `pid`, SIGKILL after `grace`; True when nothing of it is left running.
    A pid that is gone or now belongs to another process (start time differs) is left alone."""
    if not pid_alive(pid, expected_start):
        return True
    if pid == os.getpgrp():
        return False
    for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not pid_alive(pid, expected_start):
                return True
            time.sleep(0.02)
    return not pid_alive(pid, expected_start)


class Drain:
    """Reads a child's pipe to its end on a daemon thread, keeping the last `keep` bytes: a pipe nobody reads
    fills at 64 KiB and then blocks the child's next write (a server stops answering)."""

    def __init__(self, stream, keep: int = 8192) -> None:
        self.keep = keep
        self._tail = b""
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True, name="llmd-drain")
        self._thread.start()

    def _read(self, stream) -> None:
        with contextlib.suppress(OSError, ValueError):  # closed under us when the child is stopped
            for chunk in iter(lambda: stream.read1(65536), b""):
                self._tail = (self._tail + chunk)[-self.keep:]

    def text(self, wait: float = 0.5) -> str:
        """What was read so far (after up to `wait` s for the child's last bytes once it has exited)."""
        self._thread.join(wait)
        return redact(self._tail.decode("utf-8", errors="replace"))


def _pump(stream, sink: list[str], on_line: Callable[[str], None] | None) -> None:
    if stream is None:
        return
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        if on_line is not None:
            on_line(redact(line.rstrip("\n")))
    with contextlib.suppress(Exception):
        stream.close()

# Set by the SIGTERM handler so the error boundary can exit 143 instead of 130.
last_signal: int | None = None
