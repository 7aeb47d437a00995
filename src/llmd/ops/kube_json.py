"""Reading kubectl's JSON: CRD usability, storage quantities, and output holding one object, a List, or several
documents one after another."""

from __future__ import annotations

import json

from llmd.errors import ClusterError


def established(crd: dict) -> bool:
    conds = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


def served(crd: dict, version: str) -> bool:
    return any(v.get("name") == version and v.get("served") for v in (crd.get("spec") or {}).get("versions") or [])


def crd_problems(found: dict[str, dict], required: dict[str, str]) -> list[tuple[str, str]]:
    """(name, what is wrong) for each required CRD (name -> API version it must serve) that is not usable."""
    out = []
    for name, version in required.items():
        crd = found.get(name)
        if crd is None:
            out.append((name, f"{name} missing"))
        elif not served(crd, version):
            out.append((name, f"{name} does not serve {version}"))
        elif not established(crd):
            out.append((name, f"{name} is not Established"))
    return out


_QUANTITY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity_bytes(text: str) -> float:
    """A Kubernetes storage quantity (`50Gi`, `100G`, `1.5Ti`) in bytes (settings validated its form)."""
    num = text.rstrip("KMGTPEikmgtpe")
    return float(num) * _QUANTITY_UNITS[text[len(num):]]


def json_objects(text: str) -> list[dict]:
    """Objects from kubectl output that is one object, a List, or (`create -o json` with several inputs)
    several JSON documents one after another."""
    decoder = json.JSONDecoder()
    out: list[dict] = []
    pos, text = 0, text or ""
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ClusterError(f"kubectl returned invalid JSON: {exc}") from None
        out += (doc.get("items") or []) if doc.get("kind") == "List" else [doc]
