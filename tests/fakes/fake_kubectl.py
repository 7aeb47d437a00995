"""A recording stand-in for kubectl 1.33 backed by a small JSON "cluster", run as a real process in tests.

Environment:
  FAKE_KUBECTL_LOG      append every argv (without argv[0]) as one JSON line                   (required)
  FAKE_KUBECTL_STATE    JSON file: {"contexts": {name: server}, "current": name, "objects": [k8s objects],
                        "forbidden": ["<verb> <resource>[.<group>]", ...]} (default: <FAKE_KUBECTL_LOG>.state.json);
                        tests seed it with what the cluster holds and which rights the user lacks
  FAKE_KUBECTL_CAPTURE  dir; what `apply -f -` read on stdin is saved as <dir>/stdin.<n>.json    (optional)

Models only what a cluster does that llmd relies on: `config current-context|view --minify`, `version`,
`get` (one or more kinds, by name, list, --ignore-not-found, NotFound errors), `create -f -` of
SelfSubjectAccessReviews (answered from "forbidden"), server-side `apply`
(stored; a Job is marked Complete, a PVC Bound, an HTTPRoute Accepted, standing in for controllers) and
`delete` by name or selector. Anything else exits 64 so an unmodelled call fails the test instead of
passing by accident.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from argv import split  # tests/fakes/argv.py, beside this script

UNSUPPORTED = 64
VALUE_FLAGS = {"--kubeconfig", "--context", "--namespace", "-n", "--output", "-o", "--selector", "-l",
               "--filename", "-f", "--field-manager", "--tail", "--container", "-c", "--cascade", "--timeout"}
# resource (plural, lower case, without API group) -> (Kind, namespaced)
RESOURCES = {
    "customresourcedefinitions": ("CustomResourceDefinition", False), "gatewayclasses": ("GatewayClass", False),
    "storageclasses": ("StorageClass", False), "nodes": ("Node", False), "namespaces": ("Namespace", False),
    "jobs": ("Job", True), "configmaps": ("ConfigMap", True), "deployments": ("Deployment", True),
    "pods": ("Pod", True), "gateways": ("Gateway", True), "httproutes": ("HTTPRoute", True),
    "events": ("Event", True), "secrets": ("Secret", True), "persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "inferencepools": ("InferencePool", True), "services": ("Service", True), "replicasets": ("ReplicaSet", True),
    "serviceaccounts": ("ServiceAccount", True),
}
ALIASES = {"pvc": "persistentvolumeclaims", "svc": "services", "ns": "namespaces", "cm": "configmaps",
           "crd": "customresourcedefinitions", "crds": "customresourcedefinitions", "po": "pods",
           "deploy": "deployments"}
NAMESPACED = {kind: namespaced for kind, namespaced in RESOURCES.values()}


def parse(argv: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """Like kubectl, a repeated flag keeps its last value."""
    pos, opts, switches = split(argv, VALUE_FLAGS)
    return pos, {k: v[-1] for k, v in opts.items()}, switches


def resource(name: str) -> tuple[str, bool]:
    base = name.split(".", 1)[0].lower()
    base = ALIASES.get(base, base)
    if base not in RESOURCES and base + "s" in RESOURCES:
        base += "s"
    if base not in RESOURCES:
        raise KeyError(name)
    return RESOURCES[base]


class Cluster:
    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {}
        self.contexts: dict[str, str] = data.get("contexts", {})
        self.current: str = data.get("current", "")
        self.objects: list[dict] = data.get("objects", [])
        self.forbidden: list[str] = data.get("forbidden", [])

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"contexts": self.contexts, "current": self.current, "objects": self.objects,
                                   "forbidden": self.forbidden}, indent=1))
        os.replace(tmp, self.path)

    def find(self, kind: str, ns: str | None, name: str | None = None) -> list[dict]:
        out = []
        for o in self.objects:
            meta = o.get("metadata", {})
            if o.get("kind") != kind or (name is not None and meta.get("name") != name):
                continue
            if NAMESPACED.get(kind, True) and ns is not None and meta.get("namespace") != ns:
                continue
            out.append(o)
        return out

    def upsert(self, obj: dict) -> None:
        meta = obj["metadata"]
        self.objects = [o for o in self.objects if not (
            o.get("kind") == obj["kind"] and o["metadata"].get("name") == meta["name"]
            and o["metadata"].get("namespace") == meta.get("namespace"))]
        self.objects.append(obj)


def settle(obj: dict) -> None:
    """What the controllers would report soon after: a download Job completes, a PVC binds, a route is accepted."""
    if obj["kind"] == "Job":
        obj["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    elif obj["kind"] == "PersistentVolumeClaim":
        size = obj.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
        obj["status"] = {"phase": "Bound", "capacity": {"storage": size}}
    elif obj["kind"] == "HTTPRoute":
        conds = [{"type": t, "status": "True", "reason": t} for t in ("Accepted", "ResolvedRefs")]
        obj["status"] = {"parents": [{"parentRef": ref, "conditions": conds}
                                     for ref in obj.get("spec", {}).get("parentRefs", [])]}


def selected(obj: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def cmd_get(pos, opts, switches, cluster: Cluster, ns: str) -> int:
    kinds = pos[1].split(",")
    names = pos[2:]
    all_ns = "--all-namespaces" in switches or "-A" in switches
    found: list[dict] = []
    missing: list[str] = []
    for res in kinds:
        try:
            kind, _ = resource(res)
        except KeyError:
            print(f'error: the server doesn\'t have a resource type "{res}"', file=sys.stderr)
            return 1
        scope_ns = None if all_ns else ns
        if names:
            for n in names:
                hit = cluster.find(kind, scope_ns, n)
                found += hit
                if not hit:
                    missing.append(f'Error from server (NotFound): {res} "{n}" not found')
        else:
            found += [o for o in cluster.find(kind, scope_ns) if selected(o, opts.get("--selector") or opts.get("-l"))]
    ignore = "--ignore-not-found" in switches
    if missing and not ignore:
        print("\n".join(missing), file=sys.stderr)
    if len(names) == 1 and len(kinds) == 1:
        if found:
            print(json.dumps(found[0]))
        return 0 if found or ignore else 1
    if found or not names or not ignore:
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": found, "metadata": {}}))
    return 1 if missing and not ignore else 0


def cmd_apply(opts, cluster: Cluster, ns: str) -> int:
    import yaml  # only here: most calls are reads, and every call is a fresh process

    source = opts.get("--filename") or opts.get("-f")
    if source == "-":
        text = sys.stdin.read()
        capture = os.environ.get("FAKE_KUBECTL_CAPTURE")
        if capture:
            Path(capture).mkdir(parents=True, exist_ok=True)
            n = len(list(Path(capture).glob("stdin.*.json")))
            Path(capture, f"stdin.{n}.json").write_text(text)
    else:
        text = Path(source).read_text()
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc.setdefault("metadata", {})
        if NAMESPACED.get(doc["kind"], True):
            meta.setdefault("namespace", ns)
        settle(doc)
        cluster.upsert(doc)
        print(f"{doc['kind'].lower()}/{meta['name']} serverside-applied")
    cluster.save()
    return 0


def cmd_create_reviews(opts, cluster: Cluster) -> int:
    """`kubectl create -f - -o json` of SelfSubjectAccessReview(s): the API server fills in status.allowed."""
    source = opts.get("--filename") or opts.get("-f")
    doc = json.loads(sys.stdin.read() if source == "-" else Path(source).read_text())
    items = doc["items"] if doc.get("kind") == "List" else [doc]
    if any(i.get("kind") != "SelfSubjectAccessReview" for i in items):
        print("fake kubectl: create supports SelfSubjectAccessReview only", file=sys.stderr)
        return UNSUPPORTED
    for item in items:
        attrs = item["spec"]["resourceAttributes"]
        right = f"{attrs['verb']} {attrs['resource']}" + (f".{attrs['group']}" if attrs.get("group") else "")
        item["status"] = {"allowed": right not in cluster.forbidden}
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items} if doc.get("kind") == "List" else items[0]))
    return 0


def cmd_delete(pos, opts, switches, cluster: Cluster, ns: str) -> int:
    """By name(s) or by --selector; objects go at once (no finalizers in this cluster)."""
    kind, namespaced = resource(pos[1])
    scope_ns = ns if namespaced else None
    sel = opts.get("--selector") or opts.get("-l")
    if sel:
        hits = [o for o in cluster.find(kind, scope_ns) if selected(o, sel)]
    else:
        hits = []
        for name in pos[2:]:
            found = cluster.find(kind, scope_ns, name)
            if not found and "--ignore-not-found" not in switches:
                print(f'Error from server (NotFound): {pos[1]} "{name}" not found', file=sys.stderr)
                return 1
            hits += found
    cluster.objects = [o for o in cluster.objects if not any(o is h for h in hits)]
    for h in hits:
        print(f'{pos[1]} "{h["metadata"]["name"]}" deleted')
    cluster.save()
    return 0


def main(argv: list[str]) -> int:
    log = os.environ["FAKE_KUBECTL_LOG"]
    with open(log, "a") as f:
        f.write(json.dumps(argv) + "\n")
    pos, opts, switches = parse(argv)
    cluster = Cluster(Path(os.environ.get("FAKE_KUBECTL_STATE") or f"{log}.state.json"))
    context = opts.get("--context") or cluster.current
    ns = opts.get("--namespace") or opts.get("-n") or "default"
    if pos[:2] == ["config", "current-context"]:
        if not cluster.current:
            print("error: current-context is not set", file=sys.stderr)
            return 1
        print(cluster.current)
        return 0
    if context not in cluster.contexts:
        print(f'error: context "{context}" does not exist', file=sys.stderr)
        return 1
    if pos[:2] == ["config", "view"]:
        print(json.dumps({"kind": "Config", "current-context": context,
                          "clusters": [{"name": context, "cluster": {"server": cluster.contexts[context]}}],
                          "contexts": [{"name": context, "context": {"cluster": context}}]}))
        return 0
    if pos[:1] == ["version"]:
        print(json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}, "serverVersion": {"gitVersion": "v1.33.1"}}))
        return 0
    if pos[:1] == ["get"] and len(pos) >= 2:
        return cmd_get(pos, opts, switches, cluster, ns)
    if pos[:1] == ["create"] and len(pos) == 1:
        return cmd_create_reviews(opts, cluster)
    if pos[:1] == ["apply"] and "--server-side" in switches:
        return cmd_apply(opts, cluster, ns)
    if pos[:1] == ["delete"] and (len(pos) >= 3 or (len(pos) == 2 and ("--selector" in opts or "-l" in opts))):
        return cmd_delete(pos, opts, switches, cluster, ns)
    print(f"fake kubectl: unsupported command {argv!r}", file=sys.stderr)
    return UNSUPPORTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
