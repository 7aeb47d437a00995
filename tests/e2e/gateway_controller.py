"""A small gateway controller standing in for Istio (and agentgateway) in the e2e cluster.

What it does, from what really exists in the API server (polled every 0.5 s):
- GatewayClasses it owns get `Accepted`.
- Each Gateway of such a class gets the data-plane Deployment and Service the real controller would create
  (Istio: `<gateway>-istio`; agentgateway: `<gateway>`), owned by the Gateway (the garbage collector removes
  them with it), and `Accepted` (False/InvalidParameters when its parametersRef ConfigMap is missing) and
  `Programmed` (True once the Deployment has an available replica) conditions, listener status and an address.
- Each HTTPRoute whose parent is such a Gateway gets a parent status: `Accepted` (False/NoMatchingParent for a
  missing Gateway) and `ResolvedRefs` (False/BackendNotFound when a backend InferencePool or Service does not exist).
It never routes traffic: kwok's port-forward rule sends the gateway pod's port 80 to a local `llmd sim`.
"""

from __future__ import annotations

import datetime
import json
import threading
import traceback
from collections.abc import Callable
from typing import Any

import httpx

GW = "/apis/gateway.networking.k8s.io/v1"
POOL_GROUP = "inference.networking.k8s.io"
# class name -> (controllerName, suffix of the data-plane Deployment/Service names)
CLASSES = {"istio": ("istio.io/gateway-controller", "-istio"),
           "agentgateway": ("agentgateway.dev/agentgateway", "")}
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
MERGE = {"Content-Type": "application/merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cond(ctype: str, ok: bool, reason: str, message: str, generation: int, old: list[dict]) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    same = prev is not None and prev.get("status") == status
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": prev["lastTransitionTime"] if same and prev else _now()}


def _namespace_terminating(response: httpx.Response) -> bool:
    """The 403 for creating (the gateway workload) in a namespace being deleted with its Gateway still listed: a
    real controller retries too, and the next round no longer sees that Gateway."""
    try:
        causes = ((response.json().get("details") or {}).get("causes")) or []
    except ValueError:
        return False
    return response.status_code == 403 and any(c.get("reason") == "NamespaceTerminating" for c in causes)


def _strip_times(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_times(v) for k, v in obj.items() if k != "lastTransitionTime"}
    if isinstance(obj, list):
        return [_strip_times(v) for v in obj]
    return obj


class GatewayController:
    def __init__(self, client_factory: Callable[[], httpx.Client], interval_s: float = 0.5) -> None:
        self.client_factory = client_factory
        self.interval_s = interval_s
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> GatewayController:
        self._thread = threading.Thread(target=self._run, name="e2e-gateway-controller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        with self.client_factory() as c:
            while not self._stop.is_set():
                try:
                    self.reconcile(c)
                except httpx.TransportError:
                    pass  # the API server is down (outage tests): try again next round
                except httpx.HTTPStatusError as exc:
                    # starting again after an outage (429/5xx), a write that lost a race (409), an object deleted
                    # between the list and the status write (404): the next round sees the new state, as with
                    # controller-runtime; anything else is a bug in this controller
                    if (exc.response.status_code not in (404, 409, 429) and exc.response.status_code < 500
                            and not _namespace_terminating(exc.response)):
                        self.errors.append(f"{exc.request.method} {exc.request.url}: {exc}")
                        del self.errors[:-20]
                except Exception:  # recorded for the tests; the controller keeps going like a real one
                    self.errors.append(traceback.format_exc(limit=3))
                    del self.errors[:-20]
                self._stop.wait(self.interval_s)

    # ---- one reconcile pass

    def reconcile(self, c: httpx.Client) -> None:
        classes = self._classes(c)
        if not classes:
            return
        gateways = self._list(c, f"{GW}/gateways")
        ours = {(g["metadata"]["namespace"], g["metadata"]["name"]): g for g in gateways
                if g["spec"].get("gatewayClassName") in classes}
        routes = self._list(c, f"{GW}/httproutes")
        attached: dict[tuple[str, str], int] = {}
        for route in routes:
            for key in self._reconcile_route(c, route, ours):
                attached[key] = attached.get(key, 0) + 1
        for key, gw in ours.items():
            self._reconcile_gateway(c, gw, attached.get(key, 0))

    def _list(self, c: httpx.Client, path: str) -> list[dict]:
        r = c.get(path)
        if r.status_code == 404:  # CRDs not installed (yet)
            return []
        r.raise_for_status()
        return r.json().get("items", [])

    def _classes(self, c: httpx.Client) -> set[str]:
        names = set()
        for gc in self._list(c, f"{GW}/gatewayclasses"):
            name = gc["metadata"]["name"]
            if name not in CLASSES or gc["spec"].get("controllerName") != CLASSES[name][0]:
                continue
            names.add(name)
            old = (gc.get("status") or {}).get("conditions") or []
            conds = [_cond("Accepted", True, "Accepted", "Handled by the e2e gateway controller",
                           gc["metadata"].get("generation", 1), old)]
            if _strip_times(conds) != _strip_times([x for x in old if x.get("type") == "Accepted"]):
                c.patch(f"{GW}/gatewayclasses/{name}/status", json={"status": {"conditions": conds}},
                        headers=MERGE).raise_for_status()
        return names

    def _reconcile_gateway(self, c: httpx.Client, gw: dict, attached_routes: int) -> None:
        meta = gw["metadata"]
        ns, name, gen = meta["namespace"], meta["name"], meta.get("generation", 1)
        cls = gw["spec"]["gatewayClassName"]
        workload = name + CLASSES[cls][1]
        problem = self._parameters_problem(c, ns, gw)
        if problem is None:
            self._ensure_workload(c, gw, workload)
        dep = c.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{workload}")
        available = dep.json().get("status", {}).get("availableReplicas", 0) if dep.status_code == 200 else 0
        old = (gw.get("status") or {}).get("conditions") or []
        programmed = problem is None and available > 0
        conds = [
            _cond("Accepted", problem is None, "Accepted" if problem is None else "InvalidParameters",
                  problem or "Resource accepted", gen, old),
            _cond("Programmed", programmed, "Programmed" if programmed else "Pending",
                  "Resource programmed, assigned to service(s) " f"{workload}.{ns}.svc.cluster.local:80"
                  if programmed else f"Deployment {workload} has no available replica yet", gen, old),
        ]
        listeners = []
        old_listeners = {ls.get("name"): ls for ls in (gw.get("status") or {}).get("listeners") or []}
        for lst in gw["spec"].get("listeners") or []:
            lold = (old_listeners.get(lst["name"]) or {}).get("conditions") or []
            listeners.append({
                "name": lst["name"], "attachedRoutes": attached_routes,
                "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                "conditions": [_cond("Accepted", True, "Accepted", "No errors found", gen, lold),
                               _cond("Programmed", programmed, "Programmed" if programmed else "Pending",
                                     "No errors found" if programmed else "waiting for the deployment", gen, lold),
                               _cond("ResolvedRefs", True, "ResolvedRefs", "No errors found", gen, lold)],
            })
        status: dict[str, Any] = {"conditions": conds, "listeners": listeners}
        if programmed:
            status["addresses"] = [{"type": "Hostname", "value": f"{workload}.{ns}.svc.cluster.local"}]
        current = {k: (gw.get("status") or {}).get(k) for k in status}
        if _strip_times(current) != _strip_times(status):
            c.patch(f"{GW}/namespaces/{ns}/gateways/{name}/status", json={"status": status},
                    headers=MERGE).raise_for_status()

    def _parameters_problem(self, c: httpx.Client, ns: str, gw: dict) -> str | None:
        ref = ((gw["spec"].get("infrastructure") or {}).get("parametersRef")) or None
        if not ref:
            return None
        if ref.get("kind") != "ConfigMap" or ref.get("group", "") != "":
            return f"unsupported parametersRef kind {ref.get('group')}/{ref.get('kind')}"
        if c.get(f"/api/v1/namespaces/{ns}/configmaps/{ref['name']}").status_code == 404:
            return f"parametersRef ConfigMap {ref['name']} not found"
        return None

    def _ensure_workload(self, c: httpx.Client, gw: dict, workload: str) -> None:
        meta = gw["metadata"]
        ns = meta["namespace"]
        labels = {GATEWAY_NAME_LABEL: meta["name"], "gateway.istio.io/managed": "istio.io-gateway-controller"}
        owner = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": meta["name"],
                  "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]
        dep = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": workload, "namespace": ns, "labels": labels, "ownerReferences": owner},
               "spec": {"replicas": 1, "selector": {"matchLabels": {GATEWAY_NAME_LABEL: meta["name"]}},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [{
                                         "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.29.1",
                                         "ports": [{"name": "http", "containerPort": 80},
                                                   {"name": "status-port", "containerPort": 15021}]}]}}}}
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": workload, "namespace": ns, "labels": labels, "ownerReferences": owner},
               "spec": {"type": "ClusterIP", "selector": {GATEWAY_NAME_LABEL: meta["name"]},
                        "ports": [{"name": "status-port", "port": 15021, "targetPort": 15021},
                                  {"name": "http", "port": 80, "targetPort": 80}]}}
        for path, obj in ((f"/apis/apps/v1/namespaces/{ns}/deployments/{workload}", dep),
                          (f"/api/v1/namespaces/{ns}/services/{workload}", svc)):
            if c.get(path).status_code == 404:
                c.patch(path, params={"fieldManager": "e2e-gateway-controller", "force": "true"},
                        content=json.dumps(obj), headers=APPLY).raise_for_status()

    def _reconcile_route(self, c: httpx.Client, route: dict, ours: dict) -> list[tuple[str, str]]:
        """Sets the route's parent status; returns the Gateways it attached to."""
        meta = route["metadata"]
        ns, gen = meta["namespace"], meta.get("generation", 1)
        old_parents = (route.get("status") or {}).get("parents") or []
        parents, attached = [], []
        missing = self._missing_backends(c, ns, route)
        for ref in route["spec"].get("parentRefs") or []:
            if ref.get("kind", "Gateway") != "Gateway":
                continue
            key = (ref.get("namespace", ns), ref["name"])
            old = next((p.get("conditions") or [] for p in old_parents
                        if p.get("parentRef", {}).get("name") == ref["name"]), [])
            found = key in ours
            if found:
                attached.append(key)
            conds = [
                _cond("Accepted", found, "Accepted" if found else "NoMatchingParent",
                      "Route was valid" if found else f"Gateway {ref['name']} not found", gen, old),
                _cond("ResolvedRefs", not missing, "ResolvedRefs" if not missing else "BackendNotFound",
                      "All references resolved" if not missing else "; ".join(missing), gen, old),
            ]
            parents.append({"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                          "name": ref["name"]},
                            "controllerName": CLASSES["istio"][0], "conditions": conds})
        if parents and _strip_times(parents) != _strip_times(old_parents):
            c.patch(f"{GW}/namespaces/{ns}/httproutes/{meta['name']}/status", json={"status": {"parents": parents}},
                    headers=MERGE).raise_for_status()
        return attached

    def _missing_backends(self, c: httpx.Client, ns: str, route: dict) -> list[str]:
        missing = []
        for rule in route["spec"].get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                group, kind, name = ref.get("group", ""), ref.get("kind", "Service"), ref["name"]
                if group == POOL_GROUP and kind == "InferencePool":
                    path = f"/apis/{POOL_GROUP}/v1/namespaces/{ns}/inferencepools/{name}"
                elif group == "" and kind == "Service":
                    path = f"/api/v1/namespaces/{ns}/services/{name}"
                else:
                    missing.append(f"unsupported backend {group}/{kind} {name}")
                    continue
                if c.get(path).status_code == 404:
                    missing.append(f"backend {kind} {name} not found")
        return missing


def gateway_classes() -> list[dict[str, Any]]:
    """The GatewayClasses the gateway control planes' charts would install."""
    return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": name},
             "spec": {"controllerName": ctrl}} for name, (ctrl, _) in CLASSES.items()]


def schemaless_crd(group: str, kind: str, plural: str, version: str) -> dict[str, Any]:
    """A CRD that accepts any spec (x-kubernetes-preserve-unknown-fields): only the kind's existence matters."""
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def istio_crds() -> list[dict[str, Any]]:
    """What the Istio base chart provides and the inferencepool chart renders with provider istio."""
    return [schemaless_crd("networking.istio.io", "DestinationRule", "destinationrules", "v1")]


def prometheus_operator_crds() -> list[dict[str, Any]]:
    """Stand-ins for the Prometheus Operator's ServiceMonitor/PodMonitor CRDs."""
    return [schemaless_crd("monitoring.coreos.com", kind, plural, "v1")
            for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PodMonitor", "podmonitors"))]
