"""The deploy sequence as data: `llmd deploy` runs these steps in this order, `llmd render` prints them as plain
commands for a deploy by hand, and the dry-run plan lists what they would run. The charts read the token Secret
and (with a PVC cache) the model the download Job put there, so both come before `helmfile sync`."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from llmd.render import bundle as B
from llmd.settings import Settings


@dataclass(frozen=True)
class Step:
    key: str  # what the Deployer runs for it (Deployer.run)
    applies: Callable[[Settings, Collection[str]], bool]  # (settings, rendered file names)
    by_hand: Callable[[Settings, Path], list[str]]  # (settings, rendered directory): the plain commands
    skipped: tuple[str, str] | None = None  # the deploy report's (step, detail) when it does not apply


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _namespace(s: Settings, d: Path) -> list[str]:
    return [f"kubectl create namespace {shlex.quote(s.namespace)}"]


def _secret(s: Settings, d: Path) -> list[str]:  # the token on stdin, never in argv
    return [f'printf %s "$HF_TOKEN" | kubectl create secret generic {s.hf_secret_name} -n {shlex.quote(s.namespace)} '
            "--from-file=HF_TOKEN=/dev/stdin"]


def _model_cache(s: Settings, d: Path) -> list[str]:
    ns = shlex.quote(s.namespace)
    return [f"kubectl apply -n {ns} -f {_q(d / B.PVC)} -f {_q(d / B.DOWNLOAD_JOB)}",
            f"kubectl wait -n {ns} --for=condition=complete job/{s.download_job_name} --timeout=4h"]


def _charts(s: Settings, d: Path) -> list[str]:
    return [f"helmfile -f {_q(d / B.HELMFILE)} sync"]


def _route(s: Settings, d: Path) -> list[str]:
    return [f"kubectl apply -n {shlex.quote(s.namespace)} -f {_q(d / B.HTTPROUTE)}"]


def _always(s: Settings, files: Collection[str]) -> bool:
    return True


DEPLOY_STEPS: tuple[Step, ...] = (
    Step("namespace", _always, _namespace),
    Step("secret", lambda s, files: bool(s.hf_token) or s.needs_hf_token, _secret,
         skipped=("hf token secret", "no HF token (public model)")),
    Step("model_cache", lambda s, files: B.PVC in files, _model_cache),
    Step("charts", _always, _charts),
    Step("route", _always, _route),
)


def by_hand(settings: Settings, files: Collection[str], directory: Path) -> list[str]:
    """What `llmd deploy` does, as plain commands in its order."""
    return [cmd for step in DEPLOY_STEPS if step.applies(settings, files) for cmd in step.by_hand(settings, directory)]
