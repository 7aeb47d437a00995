"""Recording fake binaries for integration tests (real processes, started by real helmfile or llmd).

`install_fake(bindir, "helm", workdir)` writes an executable wrapper `bindir/helm` that runs
tests/fakes/fake_helm.py with this interpreter; the returned `FakeTool` names its log, capture and state
files and the environment the fake reads them from.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {"helm": HERE / "fake_helm.py", "kubectl": HERE / "fake_kubectl.py"}


@dataclass(frozen=True)
class FakeTool:
    name: str
    bin: Path  # the executable to hand to helmfile / llmd
    log: Path  # one JSON argv per line
    capture: Path  # helm: values files passed; kubectl: what `apply -f -` read on stdin
    state: Path  # JSON state shared between calls

    @property
    def env(self) -> dict[str, str]:
        prefix = f"FAKE_{self.name.upper()}"
        return {f"{prefix}_LOG": str(self.log), f"{prefix}_CAPTURE": str(self.capture),
                f"{prefix}_STATE": str(self.state)}

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def captured(self, release: str) -> list[Path]:
        """The values files passed for one release, in command-line order."""
        return sorted(self.capture.glob(f"{release}.*.yaml"), key=lambda p: int(p.name.rsplit(".", 2)[-2]))

    def reset(self) -> None:
        self.log.unlink(missing_ok=True)


def install_fake(bindir: Path, name: str, workdir: Path) -> FakeTool:
    bindir.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    exe = bindir / name
    exe.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(SCRIPTS[name]))} \"$@\"\n")
    exe.chmod(0o755)
    return FakeTool(name, exe, workdir / f"{name}.log", workdir / f"{name}-capture", workdir / f"{name}-state.json")
