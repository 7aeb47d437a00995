"""CRD sources: the download (a real HTTP server on 127.0.0.1), local files, what is applied; and the install
path that downloads: every download happens before the first change."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
import yaml

from llmd.errors import ConfigError, PrereqError
from llmd.ops.prereqs import crds as C
from llmd.ops.prereqs.catalog import catalog
from prereqs_support import PFake, gateway_api_docs, inference_docs, names
from test_deploy_support import CTX, clock_fixture, no_killpg_fixture, tool_calls  # noqa: F401


class Files(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = self.routes.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write((body or "not found").encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, str]]]:
    routes: ClassVar[dict[str, str]] = {}
    handler = type("H", (Files,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    finally:
        httpd.shutdown()
        httpd.server_close()


def served(docs: list[dict]) -> str:
    return yaml.safe_dump_all([{k: v for k, v in d.items() if k != "status"} for d in docs])


def test_fetch_reads_the_release_manifest_and_its_version(server):
    base, routes = server
    routes["/standard-install.yaml"] = served(gateway_api_docs())
    bundle = dataclasses.replace(catalog().crds["gateway-api"], url=f"{base}/standard-install.yaml")
    src = C.fetch(bundle, timeout_s=5)
    assert src.version == "v1.5.1" and src.names == tuple(names(gateway_api_docs()))
    assert src.origin == bundle.url


def test_fetch_404_is_a_prerequisite_error_pointing_at_crd_dir(server):
    base, _ = server
    bundle = dataclasses.replace(catalog().crds["gateway-api"], url=f"{base}/nope.yaml")
    with pytest.raises(PrereqError) as err:
        C.fetch(bundle, timeout_s=5)
    assert "404" in err.value.message and "--crd-dir" in err.value.hint


def test_fetch_of_a_file_without_the_key_crds_is_refused(server):
    base, routes = server
    routes["/x.yaml"] = served(gateway_api_docs()[1:])  # no gatewayclasses
    with pytest.raises(PrereqError) as err:
        C.fetch(dataclasses.replace(catalog().crds["gateway-api"], url=f"{base}/x.yaml"), timeout_s=5)
    assert "does not define gatewayclasses.gateway.networking.k8s.io" in err.value.message


def test_unreachable_url_fails_fast_with_the_fix():
    bundle = dataclasses.replace(catalog().crds["gateway-api"], url="http://127.0.0.1:9/x.yaml")
    with pytest.raises(PrereqError) as err:
        C.fetch(bundle, timeout_s=2)
    assert "cannot download the Gateway API CRDs" in err.value.message


def test_parse_unpacks_lists_and_drops_other_kinds():
    text = json.dumps({"kind": "List", "items": [*inference_docs()[:1], {"kind": "ValidatingAdmissionPolicy",
                                                                          "metadata": {"name": "safe-upgrades"}}]})
    assert [d["metadata"]["name"] for d in C.parse_crds(text, "x")] == ["inferencepools.inference.networking.k8s.io"]
    with pytest.raises(ConfigError):
        C.parse_crds("a: [b", "bad.yaml")


def test_prepared_labels_only_the_crds_llmd_creates_and_drops_server_fields():
    docs = gateway_api_docs()
    docs[0]["metadata"].update({"resourceVersion": "7", "uid": "u", "labels": {"team": "net"}})
    src = C.CrdSource(catalog().crds["gateway-api"], "v1.5.1", tuple(docs), "x")
    out = C.prepared(src, ours=[docs[1]["metadata"]["name"]])
    assert out[0]["metadata"] == {"name": docs[0]["metadata"]["name"], "labels": {"team": "net"},
                                  "annotations": docs[0]["metadata"]["annotations"]}  # someone else's: untouched
    assert out[1]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "llmd", "llmd.ai/prereq": "gateway-api"}
    assert out[1]["metadata"]["annotations"]["llmd.ai/prereq-version"] == "v1.5.1"
    assert all("status" not in d for d in out)
    assert "status" in docs[0]  # the source documents are not modified


def test_bundle_version_is_the_newest_annotation():
    docs = gateway_api_docs("v1.5.1")
    docs[0]["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = "v1.5.0-dev"
    assert C.bundle_version(catalog().crds["gateway-api"], docs) == "v1.5.1"


@pytest.fixture
def fake(fp, tmp_path, fake_tools_on_path, clock, no_killpg):
    return PFake(fp, tmp_path)


def test_install_downloads_everything_before_the_first_change(cli, fp, fake, server, monkeypatch, tmp_path):
    """The second download fails: nothing has been applied (strict fp: no apply is registered)."""
    base, routes = server
    routes["/gw.yaml"] = served(gateway_api_docs())
    cat = catalog()
    local = dataclasses.replace(cat, crds={**cat.crds,
                                           "gateway-api": dataclasses.replace(cat.crds["gateway-api"],
                                                                              url=f"{base}/gw.yaml"),
                                           "inference-extension": dataclasses.replace(
                                               cat.crds["inference-extension"], url=f"{base}/missing.yaml")})
    monkeypatch.setattr("llmd.ops.prereqs.install.catalog", lambda: local)
    fake.context()
    fake.reachable()
    fake.markers()
    fake.istiod(present=False)
    r = cli("prereqs", "install", "--context", CTX, "--out", str(tmp_path / "out"))
    assert r.exit_code == 3, r.stderr
    assert f"cannot download the Gateway API Inference Extension CRDs (InferencePool v1) from {base}/missing.yaml" \
           in r.stderr
    assert not [c for c in tool_calls(fp) if "apply" in c or "wait" in c]
