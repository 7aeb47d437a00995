"""A recording stand-in for helm 3.15.3, run as a real process by the real helmfile (and by llmd) in tests.

Environment:
  FAKE_HELM_LOG      append every argv (without argv[0]) as one JSON line          (required)
  FAKE_HELM_CAPTURE  dir; `upgrade`/`install`/`template` copy each --values file to
                     <dir>/<release>.<n>.yaml (n = position on the command line)    (optional)
  FAKE_HELM_STATE    JSON file with the installed releases, so `list`/`status`/`history`/`uninstall` see what
                     `upgrade --install` did (default: <FAKE_HELM_LOG>.state.json)
  FAKE_HELM_FAIL     comma list of `<command>` or `<command>:<release>` to fail with exit 1, e.g. `upgrade:gaie-x`
  FAKE_HELM_HANG     the same form: the matching `upgrade`/`install` records the release as pending-install (or
                     pending-upgrade), writes {"pid", "ppid"} to <FAKE_HELM_LOG>.hang.json and sleeps (at most
                     60 s), like a helm waiting on a cluster, so tests can interrupt it

Answers what helmfile 0.166 asks (`version --client --short`, `repo add`, `pull --untar`, `show chart`,
`upgrade --install`, `list --filter ^name$` as a table with header, `template`, `uninstall`) and what llmd
asks (`list --all -o json`, `status -o json`, `history -o json`, `rollback`). Anything else exits 64 so a
test notices a new, unmodelled call instead of passing by accident.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

from argv import split  # tests/fakes/argv.py, beside this script

VERSION = "v3.15.3"
GIT_COMMIT = "3bb50bbbdd9c946ba9989fbe4fb4104766302a64"
# helm global flags that take a value (everything else starting with '-' is a switch or --flag=value)
VALUE_FLAGS = {
    "--kube-context", "--namespace", "-n", "--kubeconfig", "--registry-config", "--repository-config",
    "--repository-cache", "--burst-limit", "--kube-apiserver", "--kube-as-user", "--kube-as-group",
    "--kube-ca-file", "--kube-token", "--version", "--destination", "-d", "--values", "-f", "--set",
    "--set-string", "--set-file", "--set-json", "--filter", "--output", "-o", "--timeout", "--history-max",
    "--max", "--template", "--post-renderer", "--description", "--untardir", "--username", "--password",
    "--wait-for-jobs", "--cascade", "--reuse-values-from",
}
UNSUPPORTED = 64


def parse(argv: list[str]) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """Split argv into positionals, valued flags (in order) and switches, as helm's cobra parser would."""
    return split(argv, VALUE_FLAGS)


def one(opts: dict[str, list[str]], *names: str, default: str = "") -> str:
    for n in names:
        if opts.get(n):
            return opts[n][-1]
    return default


class State:
    """The releases, read and written under an exclusive lock: helmfile runs independent releases in parallel."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = open(f"{path}.lock", "a")  # held until save() or process exit
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.releases: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}

    def save(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.releases, indent=1))
        os.replace(tmp, self.path)
        fcntl.flock(self._lock, fcntl.LOCK_UN)  # a hanging upgrade must not hold the others up

    @staticmethod
    def key(ns: str, name: str) -> str:
        return f"{ns}/{name}"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")


def chart_name(ref: str) -> str:
    """`oci://reg/x/inferencepool` -> inferencepool, `repo/llm-d-infra` -> llm-d-infra, `/tmp/.../chart` -> chart."""
    return ref.rstrip("/").rsplit("/", 1)[-1]


def chart_yaml(name: str, version: str) -> str:
    return f"apiVersion: v2\nname: {name}\nversion: {version or '0.0.0'}\nappVersion: {version or '0.0.0'}\n"


def capture_values(release: str, opts: dict[str, list[str]]) -> None:
    capture = os.environ.get("FAKE_HELM_CAPTURE")
    if not capture:
        return
    out = Path(capture)
    out.mkdir(parents=True, exist_ok=True)
    for n, src in enumerate([*opts.get("--values", []), *opts.get("-f", [])]):
        shutil.copyfile(src, out / f"{release}.{n}.yaml")


def row(r: dict) -> dict:
    return {"name": r["name"], "namespace": r["namespace"], "revision": str(r["revision"]), "updated": r["updated"],
            "status": r["status"], "chart": f"{r['chart']}-{r['version']}", "app_version": r["version"]}


def cmd_version(opts, switches) -> int:
    template = one(opts, "--template")
    if template:
        print(template.replace("{{.Version}}", VERSION).replace("{{ .Version }}", VERSION), end="")
    elif "--short" in switches:
        print(f"{VERSION}+g{GIT_COMMIT[:7]}")
    else:
        print(f'version.BuildInfo{{Version:"{VERSION}", GitCommit:"{GIT_COMMIT}", GitTreeState:"clean", '
              'GoVersion:"go1.22.5"}')
    return 0


def cmd_pull(pos, opts, switches) -> int:
    ref, version = pos[1], one(opts, "--version")
    dest = Path(one(opts, "--destination", "-d", default="."))
    name = chart_name(ref)
    if "--untar" in switches:
        (dest / name).mkdir(parents=True, exist_ok=True)
        (dest / name / "Chart.yaml").write_text(chart_yaml(name, version))
        (dest / name / "values.yaml").write_text("{}\n")
    else:
        dest.mkdir(parents=True, exist_ok=True)
        data = chart_yaml(name, version).encode()
        with tarfile.open(dest / f"{name}-{version or '0.0.0'}.tgz", "w:gz") as tf:
            info = tarfile.TarInfo(f"{name}/Chart.yaml")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    print(f"Pulled: {ref}:{version}")
    return 0


def cmd_upgrade(pos, opts, switches, state: State, ns: str, command: str) -> int:
    release, ref = pos[1], pos[2]
    key = State.key(ns, release)
    existing = state.releases.get(key)
    if existing is None and command == "upgrade" and "--install" not in switches and "-i" not in switches:
        print(f'Error: UPGRADE FAILED: "{release}" has no deployed releases', file=sys.stderr)
        return 1
    capture_values(release, opts)
    revision = existing["revision"] + 1 if existing else 1
    hang = matches("FAKE_HELM_HANG", command, pos)
    status = ("pending-upgrade" if existing else "pending-install") if hang else "deployed"
    history = [*(existing or {}).get("history", []), {"revision": revision, "status": status}]
    if not hang:
        for h in history[:-1]:
            h["status"] = "superseded"
    state.releases[key] = {"name": release, "namespace": ns, "revision": revision, "status": status,
                           "chart": chart_name(ref), "version": one(opts, "--version"), "ref": ref,
                           "updated": now(), "history": history}
    state.save()
    if hang:
        Path(f"{os.environ['FAKE_HELM_LOG']}.hang.json").write_text(json.dumps({"pid": os.getpid(),
                                                                                 "ppid": os.getppid()}))
        time.sleep(60)
        print("Error: context deadline exceeded", file=sys.stderr)
        return 1
    verb = "upgraded" if existing else "installed"
    print(f'Release "{release}" has been {verb}. Happy Helming!\nNAME: {release}\nNAMESPACE: {ns}\n'
          f"STATUS: deployed\nREVISION: {revision}")
    return 0


def cmd_list(opts, switches, state: State, ns: str) -> int:
    pattern = re.compile(one(opts, "--filter", default=""))
    all_ns = "-A" in switches or "--all-namespaces" in switches
    rows = [row(r) for r in state.releases.values() if (all_ns or r["namespace"] == ns) and pattern.search(r["name"])]
    if one(opts, "--output", "-o") == "json":
        print(json.dumps(rows))
        return 0
    cols = ("name", "namespace", "revision", "updated", "status", "chart", "app_version")
    print("\t".join(c.upper().replace("_", " ") for c in cols))
    for r in rows:
        print("\t".join(r[c] for c in cols))
    return 0


def not_found(command: str) -> int:
    print(f"Error: {command}: release: not found", file=sys.stderr)
    return 1


def cmd_status(pos, opts, state: State, ns: str) -> int:
    r = state.releases.get(State.key(ns, pos[1]))
    if r is None:
        return not_found("status")
    if one(opts, "--output", "-o") == "json":
        print(json.dumps({"name": r["name"], "namespace": r["namespace"], "version": r["revision"],
                          "info": {"status": r["status"], "last_deployed": r["updated"]},
                          "chart": {"metadata": {"name": r["chart"], "version": r["version"]}}}))
    else:
        print(f"NAME: {r['name']}\nNAMESPACE: {r['namespace']}\nSTATUS: {r['status']}\nREVISION: {r['revision']}")
    return 0


def cmd_history(pos, state: State, ns: str) -> int:
    r = state.releases.get(State.key(ns, pos[1]))
    if r is None:
        return not_found("history")
    print(json.dumps([{"revision": h["revision"], "updated": r["updated"], "status": h["status"],
                       "chart": f"{r['chart']}-{r['version']}", "app_version": r["version"], "description": ""}
                      for h in r["history"]]))
    return 0


def cmd_uninstall(pos, switches, state: State, ns: str) -> int:
    for release in pos[1:]:
        if state.releases.pop(State.key(ns, release), None) is None and "--ignore-not-found" not in switches:
            print(f"Error: uninstall: Release not loaded: {release}: release: not found", file=sys.stderr)
            return 1
        print(f'release "{release}" uninstalled')
    state.save()
    return 0


def cmd_rollback(pos, state: State, ns: str) -> int:
    r = state.releases.get(State.key(ns, pos[1]))
    if r is None:
        return not_found("rollback")
    r["revision"] += 1
    r["status"] = "deployed"
    for h in r["history"]:
        h["status"] = "superseded"
    r["history"].append({"revision": r["revision"], "status": "deployed"})
    state.save()
    print("Rollback was a success! Happy Helming!")
    return 0


def matches(var: str, command: str, pos: list[str]) -> bool:
    wanted = {w.strip() for w in os.environ.get(var, "").split(",") if w.strip()}
    release = pos[1] if len(pos) > 1 else ""
    return command in wanted or f"{command}:{release}" in wanted


def main(argv: list[str]) -> int:
    log = os.environ["FAKE_HELM_LOG"]
    with open(log, "a") as f:
        f.write(json.dumps(argv) + "\n")
    pos, opts, switches = parse(argv)
    if not pos:
        print("fake helm: no command", file=sys.stderr)
        return UNSUPPORTED
    command = {"delete": "uninstall", "un": "uninstall", "ls": "list"}.get(pos[0], pos[0])
    if matches("FAKE_HELM_FAIL", command, pos):
        print(f"Error: fake failure injected for {command}", file=sys.stderr)
        return 1
    state = State(Path(os.environ.get("FAKE_HELM_STATE") or f"{log}.state.json"))
    ns = one(opts, "--namespace", "-n", default="default")
    sub = pos[1] if len(pos) > 1 else ""
    if command == "version":
        return cmd_version(opts, switches)
    if command == "repo" and sub in ("add", "update", "list"):
        if sub == "add":
            print(f'"{pos[2]}" has been added to your repositories')
        return 0
    if command == "dependency" and sub in ("build", "update"):
        return 0
    if command == "pull":
        return cmd_pull(pos, opts, switches)
    if command == "show" and sub == "chart":
        print(chart_yaml(chart_name(pos[2]), one(opts, "--version")), end="")
        return 0
    if command in ("upgrade", "install"):
        return cmd_upgrade(pos, opts, switches, state, ns, command)
    if command == "template":
        capture_values(pos[1], opts)
        print(f"---\n# Source: {chart_name(pos[2])}/templates/fake.yaml\napiVersion: v1\nkind: ConfigMap\n"
              f"metadata:\n  name: {pos[1]}\n  namespace: {ns}\n")
        return 0
    if command == "list":
        return cmd_list(opts, switches, state, ns)
    if command == "status":
        return cmd_status(pos, opts, state, ns)
    if command == "history":
        return cmd_history(pos, state, ns)
    if command == "uninstall":
        return cmd_uninstall(pos, switches, state, ns)
    if command == "rollback":
        return cmd_rollback(pos, state, ns)
    print(f"fake helm: unsupported command {argv!r}", file=sys.stderr)
    return UNSUPPORTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
