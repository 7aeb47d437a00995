"""Bundle: the rendered files of one deployment (relative path -> text)."""

from __future__ import annotations

import hashlib
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


@dataclass(frozen=True)
class Bundle:
    files: Mapping[str, str]
    warnings: tuple[str, ...] = ()  # what render accepted but the user should know (scheduler config findings)

    def write(self, directory: Path) -> Path:
        """Write every file under `directory` (dirs 0755, files 0644); drop llmd files this render no longer has."""
        directory = Path(directory)
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        for rel in ALL_PATHS:
            if rel not in self.files:
                (directory / rel).unlink(missing_ok=True)
        for rel, text in self.files.items():
            path = directory / rel
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.unlink(missing_ok=True)  # O_EXCL below: never write through a planted file or symlink
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)  # umask-independent
            os.replace(tmp, path)
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
