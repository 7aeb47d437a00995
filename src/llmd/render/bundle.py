"""Bundle: the rendered files of one deployment (relative path -> text)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmd.render import yamlsafe

HELMFILE = "helmfile.yaml"
VALUES = {"infra": "values/infra.yaml", "gaie": "values/gaie.yaml", "ms": "values/ms.yaml"}
HTTPROUTE = "manifests/httproute.yaml"
PVC = "manifests/model-cache-pvc.yaml"
DOWNLOAD_JOB = "manifests/model-download-job.yaml"
ALL_PATHS = (HELMFILE, *VALUES.values(), HTTPROUTE, PVC, DOWNLOAD_JOB)
# What the last render into a directory wrote: the next one removes those it no longer writes, and nothing else.
MANIFEST = ".llmd-rendered.json"


@dataclass(frozen=True)
class Bundle:
    files: Mapping[str, str]
    warnings: tuple[str, ...] = ()  # what render accepted but the user should know (scheduler config findings)

    def write(self, directory: Path) -> Path:
        """Write every file under `directory` (dirs 0755, files 0644) and the manifest of them; remove the files an
        earlier render listed in its manifest (or, without one, llmd's fixed names) that this one no longer has.
        Nothing else in the directory is touched."""
        directory = Path(directory)
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        for rel in sorted(set(_previous(directory)) - set(self.files)):
            path = directory / rel
            path.unlink(missing_ok=True)
            for parent in path.parents:  # a folder only our files lived in goes too
                if parent == directory:
                    break
                if parent.is_dir() and not parent.is_symlink():
                    if any(parent.iterdir()):
                        break
                    parent.rmdir()
        files = dict(self.files)
        files[MANIFEST] = json.dumps({"llmd_rendered": sorted(self.files)}, indent=1) + "\n"
        for rel, text in files.items():  # the manifest last: it lists only what was written
            _write_file(directory / rel, text)
        return directory

    def digest(self) -> str:
        """sha256 over the sorted (path, text) pairs: equal digests mean identical deployments."""
        h = hashlib.sha256()
        for rel in sorted(self.files):
            for part in (rel, self.files[rel]):
                data = part.encode("utf-8")
                h.update(len(data).to_bytes(8, "big"))
                h.update(data)
        return h.hexdigest()

    def manifest_docs(self, relpath: str) -> list[dict[str, Any]]:
        """The parsed YAML documents of one file (KeyError when the bundle has no such file)."""
        return yamlsafe.load_all(self.files[relpath])

    def to_stream(self) -> str:
        """All files as one YAML stream, each document prefixed with `# file: <path>` (for `--out -`)."""
        parts = []
        for rel, text in self.files.items():
            body = text if text.endswith("\n") else text + "\n"
            parts.append(f"---\n# file: {rel}\n{body}")
        return "".join(parts)


def _previous(directory: Path) -> list[str]:
    """What the last render here wrote: its manifest, else llmd's fixed names (a render older than manifests).
    Entries that leave the directory or are not plain relative paths are ignored, never followed."""
    try:
        listed = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["llmd_rendered"]
    except (OSError, ValueError, KeyError, TypeError):
        return list(ALL_PATHS)
    if not isinstance(listed, list):
        return list(ALL_PATHS)
    return [rel for rel in listed if isinstance(rel, str) and rel and not os.path.isabs(rel)
            and ".." not in Path(rel).parts and rel != MANIFEST]


def _write_file(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # O_EXCL below: never write through a planted file or symlink
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # umask-independent
    os.replace(tmp, path)
