"""The local platform: `--replicas` `llmd sim` processes and one scheduling gateway (`python -m llmd.gateway`) on
127.0.0.1, started through llmd.proc as supervised background processes that outlive the command.

Everything lives under <state dir>/local/<namespace>/<release postfix>/: state.json (pids with their kernel start
times, ports, URLs, the settings that shaped the stack), epp-config.yaml (the EndpointPickerConfig the gateway runs)
and logs/. A pid is only ours while its start time matches, so a state file left by a dead run is recognised as
stale and a recycled pid is never signalled. Cleanup stops whatever of the recorded processes still runs, whichever
of them crashed or was killed -9 before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from llmd import proc
from llmd.errors import DeployError, Interrupted, LlmdError, NotReadyError, Refused, TestFailed
from llmd.ops.target import Target, llmd_command
from llmd.paths import state_dir

if TYPE_CHECKING:
    from llmd.scheduler.selection import Selection

STATE_FILE = "state.json"
EPP_CONFIG = "epp-config.yaml"
URL_PREFIX = "http://127.0.0.1:"
# Every URL here is plain http on 127.0.0.1: no proxy from the environment, and no CA bundle to load (httpx's
# one-shot calls build a TLS context each time: ~0.1 s, three per `scheduler apply`).
LOOPBACK: dict[str, Any] = {"trust_env": False, "verify": False}


def local_dir(settings) -> Path:
    return state_dir() / "local" / settings.namespace / settings.release_postfix


def preset() -> dict[str, Any]:
    from llmd import presets

    return presets.load("local")


def replica_count(settings) -> int:
    """--replicas when given; else the local preset's (8, sized against the comparison workload)."""
    if settings.sources.get("replicas", "default") != "default":
        return int(settings.replicas)
    return int(preset()["replicas"])


def sim_flags(settings) -> list[str]:
    """The `llmd sim` flags of every replica: the preset's, with --set local.sim.<flag>=V over them."""
    from llmd.platform import sim_flags as flags

    return flags.argv(flags.merged(settings.local_sim))


def perf_defaults() -> dict[str, dict[str, Any]]:
    """The preset's `workload:` section as PerfOptions fields: {"shared-prefix": {"groups": 48, ...}}."""
    return {workload: {k.replace("-", "_"): v for k, v in values.items()}
            for workload, values in (preset().get("workload") or {}).items()}


@dataclass
class LocalProcess:
    name: str  # replica-0 .. replica-N, gateway
    role: str  # replica | gateway
    pid: int
    start: str | None  # kernel start time of the pid (None without /proc)
    log: str
    url: str | None = None

    def alive(self) -> bool:
        return proc.pid_alive(self.pid, self.start)


@dataclass
class LocalState:
    dir: Path
    model: str
    replicas: int
    scheduler: str
    max_model_len: int
    sim_flags: list[str] | None = None  # the replicas' llmd sim flags (None: a state file from before they were kept)
    created_at: float = field(default_factory=time.time)
    processes: list[LocalProcess] = field(default_factory=list)

    @property
    def shape(self) -> tuple[str, int, int]:
        return (self.model, self.replicas, self.max_model_len)

    @property
    def gateway(self) -> LocalProcess | None:
        return next((p for p in self.processes if p.role == "gateway"), None)

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {k: v for k, v in asdict(self).items() if k != "dir"}
        tmp = self.dir / (STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
        tmp.replace(self.dir / STATE_FILE)

    @classmethod
    def load(cls, d: Path) -> LocalState | None:
        try:
            doc = json.loads((d / STATE_FILE).read_text(encoding="utf-8"))
            procs = [LocalProcess(**p) for p in doc.pop("processes", [])]
            return cls(dir=d, processes=procs, **doc)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise DeployError(f"local state file {d / STATE_FILE} is unreadable: {exc}",
                              hint=f"stop what it started by hand if anything runs, then remove {d}") from None


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    """One deploy/cleanup at a time per local stack (a second one started meanwhile is refused, not raced)."""
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(d / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(f"another llmd deploy or cleanup is working on the local stack in {d}",
                          hint="wait for it to finish, then run `llmd status --platform local`") from None
        yield


def _log_url(log: Path) -> str | None:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(URL_PREFIX) and line[len(URL_PREFIX):].strip().isdigit():
            return line.strip()
    return None


def _tail(log: str, lines: int = 12) -> str:
    try:
        return "\n".join(Path(log).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _get_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import httpx

    try:
        r = httpx.get(url, timeout=timeout, **LOOPBACK)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        doc = r.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=1.0, **LOOPBACK).status_code == 200
    except httpx.HTTPError:
        return False


def gateway_state(url: str) -> dict[str, Any] | None:
    return _get_json(url + "/llmd/gateway")


def scheduler_label(settings) -> str:
    return f"file {settings.scheduler_config}" if settings.scheduler_config else settings.scheduler


def chosen_scheduler(settings) -> Selection:
    """The EndpointPickerConfig these settings select (profile or --scheduler-config, then overrides), with its
    source and warnings: the same document the cluster's EPP would run (llmd.scheduler.selection)."""
    from llmd.gateway.scheduling import Scheduler
    from llmd.scheduler.selection import for_settings

    chosen = for_settings(settings)
    Scheduler(chosen.config)  # a plugin the local gateway does not simulate is bad input (exit 2) before anything
    return chosen


def effective_config(settings) -> dict[str, Any]:
    return chosen_scheduler(settings).config


def config_file(d: Path, config: dict[str, Any]) -> tuple[Path, str]:
    """Where `scheduler apply` keeps a config it diffs (<state>/epp-configs/, named by content like the cluster's
    pluginsConfigFile) and its text; written when missing."""
    from llmd.render import yamlsafe
    from llmd.render.epp import config_file_name

    text = yamlsafe.dump(config)
    path = d / "epp-configs" / config_file_name(text)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(text, encoding="utf-8")
    return path, text


class LocalPlatform:
    name = "local"

    def target(self, settings) -> Target:
        return Target(settings.namespace, None, str(local_dir(settings)), platform="local")

    # deploy -------------------------------------------------------------------------------------------------------
    def deploy(self, settings, runner, ui, *, out_dir: Path, recover: bool = False):
        from llmd.ops.deploy import DeployReport
        from llmd.ops.wait import Readiness

        t0 = time.monotonic()
        d = local_dir(settings)
        report = DeployReport(target=self.target(settings), rendered_dir=str(d), digest="", dry_run=runner.dry_run)
        n = replica_count(settings)
        effective_config(settings)
        if runner.dry_run:
            for i in range(n):
                report.planned.append(" ".join(self._sim_argv(settings)) + f"  # replica-{i}")
            report.planned.append(f"{sys.executable} -m llmd.gateway --config {d / EPP_CONFIG} --replica ...")
            return report
        with _locked(d):
            state = LocalState.load(d)
            if state is not None:
                reused = self._reuse(settings, state, n, report)
                if reused:
                    report.readiness = Readiness(self._components(state), time.monotonic() - t0)
                    report.elapsed_s = time.monotonic() - t0
                    report.what = f"{n} replicas + gateway"
                    return report
            state = LocalState(d, settings.served_model_name, n, scheduler_label(settings), settings.max_model_len,
                               sim_flags(settings))
            before = proc.own_children()
            try:
                self._start(settings, runner, ui, state, report)
            except BaseException as exc:
                self._stop_all(state)
                # Ctrl-C can land between a start and its pid reaching the state file: stop such a child too
                for pid in proc.own_children() - before:
                    proc.stop_pid(pid, proc.start_id(pid))
                if isinstance(exc, KeyboardInterrupt):
                    raise Interrupted("interrupted during deploy; every local process started was stopped") from None
                raise
        report.changed = True
        report.readiness = Readiness(self._components(state), time.monotonic() - t0)
        report.elapsed_s = time.monotonic() - t0
        report.what = f"{n} replicas + gateway"
        return report

    def _reuse(self, settings, state: LocalState, n: int, report) -> bool:
        """A running stack of the same shape is kept (its scheduler applied if it differs); a dead or partial one
        is stopped and replaced; a running one of another shape is refused."""
        running = [p for p in state.processes if p.alive()]
        if running and len(running) == len(state.processes):
            flags = sim_flags(settings)
            other_sim = state.sim_flags not in (None, flags)  # None: a state file that did not record them
            if state.shape != (settings.served_model_name, n, settings.max_model_len) or other_sim:
                sim_note = f"; its replicas run with `{' '.join(state.sim_flags or [])}`, this deploy asks for " \
                           f"`{' '.join(flags)}` (local.sim)" if other_sim else ""
                raise DeployError(
                    f"a local stack is already running in {state.dir} with {state.replicas} replicas of "
                    f"{state.model} (max-model-len {state.max_model_len}); this deploy asks for {n} of "
                    f"{settings.served_model_name} (max-model-len {settings.max_model_len}){sim_note}",
                    hint=f"`{llmd_command(settings, None, 'cleanup')} --force` first (or deploy with the same "
                         "settings; `llmd scheduler apply` changes only the scheduler)")
            from llmd.gateway.proxy import config_digest

            running_cfg = gateway_state(state.gateway.url or "") if state.gateway else None
            config = effective_config(settings)
            if (running_cfg or {}).get("digest") != config_digest(config):
                self._apply(state, scheduler_label(settings), config)
                report.changed = True
                report.step("scheduler", "done", f"{state.scheduler} applied to the running gateway")
            else:
                url = state.gateway.url if state.gateway else "?"
                report.step("local stack", "unchanged", f"already running (gateway {url})")
            return True
        dead = [p for p in state.processes if p not in running]
        self._stop_all(state)
        what = "stale state of a dead run" if not running else "partial stack"
        report.step("cleanup", "done", f"{what}: {', '.join(f'{p.name} (pid {p.pid})' for p in dead)} not running; "
                                       "stopped the rest and started afresh")
        return False

    def _sim_argv(self, settings) -> tuple[str, ...]:
        return (sys.executable, "-m", "llmd", "sim", "--port", "0", "--model", settings.served_model_name,
                "--max-model-len", str(settings.max_model_len), *sim_flags(settings))

    def _start(self, settings, runner, ui, state: LocalState, report) -> None:
        from llmd.proc import Cmd

        logs = state.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg = preset()
        deadline = time.monotonic() + float(cfg["start_timeout_s"])
        config = effective_config(settings)  # a bad profile or override fails before anything starts
        for i in range(state.replicas):
            name = f"replica-{i}"
            log = logs / f"{name}.log"
            log.write_bytes(b"")
            child = runner.spawn_detached(Cmd((*self._sim_argv(settings), "--seed", str(i + 1)),
                                              title=f"local {name}"), log)
            state.processes.append(LocalProcess(name, "replica", child.pid, proc.start_id(child.pid), str(log)))
            state.save()  # recorded before the next start: a crash here leaves nothing unaccounted for
        for p in state.processes:
            p.url = self._wait_url(p, deadline)
        state.save()
        urls = [p.url or "" for p in state.processes]
        report.step("replicas", "done", f"{state.replicas} x llmd sim: " + ", ".join(u.rsplit(':', 1)[1] for u in urls))
        (state.dir / EPP_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        argv: list[str] = [sys.executable, "-m", "llmd.gateway", "--config", str(state.dir / EPP_CONFIG),
                           "--profile", state.scheduler, "--scrape-interval", str(cfg["gateway"]["scrape-interval"])]
        for u in urls:
            argv += ["--replica", u]
        log = logs / "gateway.log"
        log.write_bytes(b"")
        child = runner.spawn_detached(Cmd(tuple(argv), title="local scheduling gateway"), log)
        gw = LocalProcess("gateway", "gateway", child.pid, proc.start_id(child.pid), str(log))
        state.processes.append(gw)
        state.save()
        gw.url = self._wait_url(gw, deadline)
        state.save()
        self._wait_pool(gw, state.replicas, deadline)
        report.step("gateway", "done", f"{gw.url} scheduler {state.scheduler} (EPP config {state.dir / EPP_CONFIG})")
        report.digest = (gateway_state(gw.url) or {}).get("digest", "")

    def _wait_url(self, p: LocalProcess, deadline: float) -> str:
        while time.monotonic() < deadline:
            url = _log_url(Path(p.log))
            if url:
                return url
            if not p.alive():
                raise DeployError(f"local {p.name} (pid {p.pid}) exited during start-up", details=_tail(p.log),
                                  hint=f"its log: {p.log}")
            time.sleep(0.05)
        raise DeployError(f"local {p.name} (pid {p.pid}) did not start listening in time", details=_tail(p.log),
                          hint="the machine may be overloaded; retry, or look at the log " + p.log)

    def _wait_pool(self, gw: LocalProcess, replicas: int, deadline: float) -> None:
        assert gw.url is not None
        while time.monotonic() < deadline:
            st = gateway_state(gw.url)
            if st and sum(1 for e in st["endpoints"] if e["ready"]) == replicas:
                return
            if not gw.alive():
                raise DeployError(f"the local gateway (pid {gw.pid}) exited during start-up", details=_tail(gw.log))
            time.sleep(0.05)
        raise DeployError("the local gateway does not see every replica as ready", details=_tail(gw.log))

    def _components(self, state: LocalState):
        from llmd.ops.wait import Component

        out = []
        for p in state.processes:
            alive = p.alive()
            ready = alive and p.url is not None and _healthy(p.url)
            note = "" if ready else ("not running" if not alive else "not answering")
            label = f"{p.name} {p.url or ''} (pid {p.pid})" if p.role == "replica" else \
                f"{p.url or ''} (pid {p.pid}, scheduler {state.scheduler})"
            out.append(Component(p.role, label, 1 if ready else 0, 1, note))
        return out

    # status -------------------------------------------------------------------------------------------------------
    def status(self, settings, runner, *, say=None):
        from llmd.ops.status import StatusReport

        report = StatusReport(self.target(settings))
        state = LocalState.load(local_dir(settings))
        deploy_cmd = llmd_command(settings, None, "deploy")
        if state is None:
            report.problems = ["nothing is deployed on the local platform"]
            report.hint = f"`{deploy_cmd}` starts the replicas and the gateway"
            return report
        report.components = self._components(state)
        alive = [p for p in state.processes if p.alive()]
        if not alive:
            report.verdict = "not deployed"
            report.problems = [f"stale state from a dead run in {state.dir}: none of its processes runs ("
                               + ", ".join(f"{p.name} pid {p.pid}" for p in state.processes) + ")"]
            report.hint = f"`{llmd_command(settings, None, 'cleanup')} --force` removes it; `{deploy_cmd}` replaces it"
            return report
        bad = [c for c in report.components if not c.done]
        if not bad:
            report.verdict = "healthy"
            return report
        report.verdict = "degraded"
        report.problems = [f"{c.key} {c.name}: {c.note}" for c in bad]
        report.hint = f"`{deploy_cmd}` replaces a partial stack; logs: {state.dir / 'logs'}"
        return report

    # cleanup ------------------------------------------------------------------------------------------------------
    def cleanup(self, settings, runner, ui, *, keep_pvc: bool, remove_namespace: bool, confirm):
        from llmd.ops.cleanup import CleanupReport

        d = local_dir(settings)
        report = CleanupReport(self.target(settings), dry_run=runner.dry_run)
        state = LocalState.load(d)
        if state is None:
            report.nothing_to_do = not d.exists()
            if not report.nothing_to_do and not runner.dry_run:
                shutil.rmtree(d, ignore_errors=True)
                report.add("state", str(d), "removed", "no state file: leftovers only")
            return report
        order = sorted(state.processes, key=lambda p: p.role != "gateway")  # the gateway first: no new picks
        if runner.dry_run:
            for p in order:
                report.add("process", f"{p.name} (pid {p.pid})", "planned")
            report.add("state", str(d), "planned")
            return report
        ui.info(f"will stop on {report.target.describe()}:")
        for p in order:
            ui.info(f"  - {p.name} (pid {p.pid}){'' if p.alive() else ' (already exited)'}")
        if confirm is not None and not confirm(f"Stop these local processes and remove {d}?"):
            raise Refused("cleanup cancelled; nothing was stopped")
        with _locked(d):
            for p in order:
                was_alive = p.alive()
                if proc.stop_pid(p.pid, p.start):
                    report.add("process", f"{p.name} (pid {p.pid})", "removed" if was_alive else "absent",
                               "stopped" if was_alive else "had already exited")
                else:
                    report.add("process", f"{p.name} (pid {p.pid})", "failed", "still running after SIGKILL")
            if report.complete:
                for entry in d.iterdir():
                    if entry.name != ".lock":
                        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if report.complete:
            (d / ".lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                d.rmdir()
            report.add("state", str(d), "removed", "state, EPP config and logs")
        return report

    def _stop_all(self, state: LocalState) -> None:
        for p in sorted(state.processes, key=lambda p: p.role != "gateway"):
            proc.stop_pid(p.pid, p.start)
        (state.dir / STATE_FILE).unlink(missing_ok=True)

    # endpoint and scheduler ---------------------------------------------------------------------------------------
    def _running_gateway(self, settings, missing: type[LlmdError] = TestFailed) -> tuple[LocalState, LocalProcess]:
        """The state and the live gateway; else `missing` (test and bench: exit 7; scheduler verbs: exit 6)."""
        state = LocalState.load(local_dir(settings))
        deploy_cmd = llmd_command(settings, None, "deploy")
        if state is None or state.gateway is None or state.gateway.url is None:
            raise missing("nothing is deployed on the local platform", hint=f"`{deploy_cmd}` first")
        gw = state.gateway
        if not gw.alive():
            raise missing(f"the local gateway (pid {gw.pid}) is not running", details=_tail(gw.log),
                             hint=f"`{llmd_command(settings, None, 'status')}` shows what else is down; "
                                  f"`{deploy_cmd}` replaces the stack")
        return state, gw

    @contextlib.contextmanager
    def open_endpoint(self, settings, runner, ui, **options: Any) -> Iterator[Any]:
        from llmd.ops.endpoint import Endpoint

        state, gw = self._running_gateway(settings)
        url = gw.url or ""

        def diagnose() -> str:
            st = gateway_state(url)
            if st is None:
                return f"gateway {url} does not answer /llmd/gateway"
            rows = [f"{e['name']} ready={e['ready']} waiting={e['waiting']} running={e['running']} picks={e['picks']}"
                    f" failures={e['failures']}" for e in st["endpoints"]]
            return f"local gateway ({st['profile']}: {st['scheduler']}):\n  " + "\n  ".join(rows)

        yield Endpoint("local", f"local gateway at {url} (scheduler {state.scheduler})", base_url=url,
                       diagnose=diagnose)

    def running_scheduler(self, settings, runner):
        from llmd.ops.scheduler_show import ShowReport

        state, gw = self._running_gateway(settings, NotReadyError)
        st = gateway_state(gw.url or "")
        if st is None:
            raise NotReadyError(f"the local gateway at {gw.url} does not answer /llmd/gateway",
                                hint=f"`{llmd_command(settings, None, 'status')}` shows what runs")
        return ShowReport(f"local gateway {gw.url} (scheduler {st['profile']})", st["config"],
                          str(state.dir / EPP_CONFIG))

    def metrics_session(self, settings, runner, ui):
        state, gw = self._running_gateway(settings, NotReadyError)
        return LocalMetricsSession(state, gw)

    def perf_defaults(self) -> dict[str, dict[str, Any]]:
        return perf_defaults()

    def pick_counts(self, settings) -> dict[str, int] | None:
        _, gw = self._running_gateway(settings)
        st = gateway_state(gw.url or "")
        return {e["name"]: e["picks"] for e in st["endpoints"]} if st else None

    def apply_scheduler(self, settings, runner, ui, profile: str, *, dry_run: bool = False) -> dict[str, Any]:
        """The cluster's `scheduler apply` on the local gateway: the running config (GET /llmd/gateway) diffed
        against the chosen one with the same report; nothing is PUT when the digests match or with `dry_run`. The
        gateway swaps its scheduler in-process (its prefix index starts empty, like a rolled EPP); the replicas
        keep running, which is checked by their pids and start times as the cluster checks pod UIDs."""
        import dataclasses

        from llmd.gateway.proxy import config_digest
        from llmd.ops.scheduler_apply import change_report

        t0 = time.monotonic()
        # the settings' own profile keeps their --scheduler-config / --scorer-weight / --scorer-param; another
        # profile (bench compare) is applied as the profile alone
        target = settings if profile == settings.scheduler else dataclasses.replace(
            settings, scheduler=profile, scheduler_config=None, scorer_weights=(), scorer_params=())
        chosen = chosen_scheduler(target)  # bad input: exit 2 before the gateway is asked anything
        state, gw = self._running_gateway(settings, NotReadyError)
        running = gateway_state(gw.url or "")
        if running is None:
            raise NotReadyError(f"the local gateway at {gw.url} does not answer /llmd/gateway",
                                hint=f"`{llmd_command(settings, None, 'status')}` shows what runs")
        before_path, before_text = config_file(state.dir, running.get("config") or {})
        after_path, after_text = config_file(state.dir, chosen.config)
        report = change_report(self.target(settings), chosen.source,
                               (str(before_path), before_text, running.get("config")),
                               (str(after_path), after_text, chosen.config),
                               dry_run=dry_run, warnings=list(chosen.warnings))
        unchanged = running.get("digest") == config_digest(chosen.config)
        if not unchanged and dry_run:
            report.planned = [f"PUT {gw.url}/llmd/scheduler (profile {scheduler_label(target)}, config {after_path})"]
        if not unchanged and not dry_run:
            replicas = {p.name: (p.pid, p.start) for p in state.processes if p.role == "replica"}
            ui.step(f"local gateway {gw.url}: scheduler {scheduler_label(target)}")
            self._apply(state, scheduler_label(target), chosen.config)
            gone = [name for name, (pid, start) in replicas.items() if not proc.pid_alive(pid, start)]
            if gone:
                raise DeployError("local replicas stopped during the scheduler apply: " + ", ".join(gone),
                                  hint=f"`{llmd_command(settings, None, 'status')}` shows them; "
                                       f"`{llmd_command(settings, None, 'deploy')}` replaces a partial stack")
            report.model_pods = {name: f"{pid}@{start}" for name, (pid, start) in replicas.items()}
            report.old_epp_pods = report.new_epp_pods = [f"gateway (pid {gw.pid})"]  # swapped in-process
            report.changed = True
        report.elapsed_s = time.monotonic() - t0
        return {**report.to_dict(), "profile": profile, "platform": self.name}

    def _apply(self, state: LocalState, profile: str, config: dict[str, Any]) -> dict[str, Any]:
        """PUT an EndpointPickerConfig to the gateway; in effect once the gateway reports its digest."""
        import httpx

        from llmd.gateway.proxy import config_digest

        gw = state.gateway
        assert gw is not None and gw.url is not None
        try:
            r = httpx.put(gw.url + "/llmd/scheduler", json={"profile": profile, "config": config}, timeout=5.0,
                          **LOOPBACK)
        except httpx.HTTPError as exc:
            raise DeployError(f"cannot reach the local gateway at {gw.url}: {exc}",
                              hint="`llmd status --platform local` shows whether it runs") from None
        if r.status_code != 200:
            raise DeployError(f"the local gateway refused scheduler {profile}: {r.text[:500]}")
        st = gateway_state(gw.url) or {}
        if st.get("digest") != config_digest(config):
            raise DeployError(f"scheduler {profile} is not in effect on the local gateway after it was applied")
        (state.dir / EPP_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        state.scheduler = profile
        state.save()
        return st


class LocalMetricsSession:
    """`scheduler metrics` on the local platform: every replica's /metrics read directly (no tunnels), and the
    gateway's state in the place of the EPP's metrics."""

    def __init__(self, state: LocalState, gw: LocalProcess) -> None:
        self.replicas = [(p.name, p.url) for p in state.processes if p.role == "replica"]
        self.gw_url = gw.url or ""
        self.previous: dict[str, Any] = {}

    def __enter__(self) -> LocalMetricsSession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def snapshot(self):
        import httpx

        from llmd.ops.scheduler_metrics import Epp, Replica, Snapshot, replica_metrics

        snap = Snapshot(time.time(), Epp(), picker=f"local gateway {self.gw_url}")
        with httpx.Client(timeout=5.0, **LOOPBACK) as client:
            for name, url in self.replicas:
                try:
                    r = client.get(f"{url}/metrics")
                    r.raise_for_status()
                    rep = replica_metrics(f"{name} {url}", r.text, self.previous.get(name))
                except httpx.HTTPError as exc:
                    rep = Replica(f"{name} {url}", error=f"{type(exc).__name__}: {exc}")
                snap.replicas.append(rep)
                if rep.error is None:
                    self.previous[name] = rep
        st = gateway_state(self.gw_url)
        if st is None:
            snap.epp = Epp(error=f"the local gateway at {self.gw_url} does not answer /llmd/gateway")
            return snap
        ready = [e for e in st["endpoints"] if e["ready"]]
        sched = st["scheduling"]
        snap.epp = Epp(requests=st["requests"], request_errors=sum(st["failures"].values()),
                       scheduled=sched["scheduled"], schedule_failures=sched["failures"],
                       scheduling_mean_ms=sched["mean_ms"], scheduling_p99_ms=sched["p99_ms"], ready_pods=len(ready),
                       pool_avg_queue=sum(e["waiting"] for e in ready) / len(ready) if ready else None,
                       pool_avg_kv=sum(e["kv_usage"] for e in ready) / len(ready) if ready else None)
        return snap
