"""Chart values: helm's index syntax in --set, llmd's own chart schema (checked before anything runs, and
against the upstream schemas when ../shared is present), the config file's `values:`, duplicate keys and
did-you-mean."""

from __future__ import annotations

import json

import pytest
import yaml

from llmd.errors import ConfigError
from llmd.render import render_bundle, value_schema
from llmd.render.value_schema import Arr, Obj
from llmd.settings import load_settings


def _ms(bundle) -> dict:
    return yaml.safe_load(bundle.files["values/ms.yaml"])


def test_helm_index_syntax_sets_the_list_item():
    s = load_settings({"no_hf_token": True}, sets=["values.ms.decode.containers[0].image=reg.example/vllm:1.10"])
    decode = _ms(render_bundle(s))["decode"]
    assert decode["containers"][0]["image"] == "reg.example/vllm:1.10"
    assert decode["containers"][0]["name"] == "vllm"  # the rest of the item is kept
    assert not any("[" in k for k in decode)  # no key named `containers[0]`


def test_index_syntax_creates_a_missing_list_and_appends_at_its_end():
    s = load_settings({"no_hf_token": True}, sets=["values.ms.decode.nodeSelector.pool=gpu",
                                                   "values.ms.decode.acceleratorTypes.labelValues[0]=a",
                                                   "values.ms.decode.acceleratorTypes.labelValues[1]=b"])
    assert _ms(render_bundle(s))["decode"]["acceleratorTypes"]["labelValues"][-2:] == ["a", "b"]


@pytest.mark.parametrize(("expr", "needle"), [
    ("values.ms.decode.containers[x]=1", "chart-value paths look like"),
    ("values.ms.decode.containers[7].image=x", "is a list of 1 items"),
])
def test_bad_index_paths_are_bad_input(expr, needle):
    with pytest.raises(ConfigError, match=needle):
        render_bundle(load_settings({"no_hf_token": True}, sets=[expr]))


@pytest.mark.parametrize(("expr", "needle"), [
    ("values.ms.decode.replicas=two", "values.ms.decode.replicas: 'two' is not an integer"),
    ("values.ms.decode.parallelism.tensor=1.5", "is not an integer"),
    ("values.ms.decode.replica=2", "did you mean 'replicas'?"),
    ("values.ms.decode.parallelism.tensr=2", "did you mean 'tensor'?"),
    ("values.infra.gateway.foo=1", "not a key the chart accepts here"),
    ("values.ms.decode.containers[0].args=--port", "is not a list"),
])
def test_values_failing_the_chart_schema_exit_2_before_anything_runs(cli, fp, expr, needle):
    r = cli("deploy", "--no-hf-token", "--set", expr)  # fp is strict: no subprocess may start
    assert r.exit_code == 2, r.stderr
    assert needle in r.stderr and "chart schema" in r.stderr
    assert expr.split("=")[0] in r.stderr  # names the override that caused it


def test_every_rendered_default_passes_the_schema():
    for acc in ("nvidia-l40s", "tpu-v6e", "sim", "cpu", "amd"):
        render_bundle(load_settings({"accelerator": acc, "no_hf_token": True, "monitoring": True}))


def _walk(node, upstream, path):
    """Our schema agrees with the upstream one: closed mappings list exactly its keys, scalar types match."""
    if isinstance(node, str):
        want = upstream.get("type")
        if want and node != "any":
            ok = {"quantity": ("string", "number", "integer")}.get(node, (node,))
            assert any(t in ok for t in (want if isinstance(want, list) else [want])), f"{path}: {node} vs {want}"
        return
    if isinstance(node, Arr):
        if upstream.get("items"):
            _walk(node.items, upstream["items"], path + "[]")
        return
    props = upstream.get("properties") or {}
    if upstream.get("additionalProperties") is False:
        assert node.closed, f"{path} is closed upstream"
    if node.closed:
        assert upstream.get("additionalProperties") is False, f"{path} is open upstream"
        assert set(node.props) == set(props), f"{path}: {set(node.props) ^ set(props)}"
    for key, sub in node.props.items():
        if key in props:
            _walk(sub, props[key], f"{path}.{key}")


@pytest.mark.parametrize(("release", "chart_dir"), [("ms", "llm-d-modelservice-v0.4.9"),
                                                    ("infra", "llm-d-infra-v1.4.0")])
def test_llmd_schema_matches_the_upstream_chart_schema(upstream, release, chart_dir):
    schema = json.loads((upstream / chart_dir / "values.schema.json").read_text())
    _walk(value_schema.SCHEMAS[release][1], schema, release)


def test_llmd_schema_refuses_what_upstream_refuses(upstream):
    import jsonschema

    schema = json.loads((upstream / "llm-d-modelservice-v0.4.9" / "values.schema.json").read_text())
    bad = {"decode": {"replicas": "two"}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))
    assert value_schema.errors(value_schema.MODELSERVICE, bad, "values.ms")
    assert not value_schema.errors(Obj({"a": "integer"}), {"a": None}, "x")  # null deletes a key in helm


# ---- config file ---------------------------------------------------------------------------------------------

def _config(tmp_path, text: str) -> str:
    p = tmp_path / "llmd.yaml"
    p.write_text(text)
    return str(p)


def test_config_file_values_are_chart_overrides_below_set(tmp_path):
    path = _config(tmp_path, "replicas: 2\nvalues:\n  ms:\n    decode:\n      replicas: 3\n"
                             "      containers:\n        - {name: vllm, image: a}\n  infra:\n    gateway:\n"
                             "      gatewayClassName: my-class\n")
    s = load_settings({"no_hf_token": True}, config=path, sets=["values.ms.decode.replicas=5"])
    assert s.replicas == 2 and s.sources["value_overrides"] == f"config file {path} and --set"
    b = render_bundle(s)
    assert _ms(b)["decode"]["replicas"] == 5  # --set wins over the file
    assert _ms(b)["decode"]["containers"] == [{"name": "vllm", "image": "a"}]
    assert yaml.safe_load(b.files["values/infra.yaml"])["gateway"]["gatewayClassName"] == "my-class"


def test_config_file_values_fail_the_schema_like_set(cli, tmp_path):
    path = _config(tmp_path, "values:\n  ms:\n    decode:\n      replicas: two\n")
    r = cli("render", "--config", path, "--out", "-")
    assert r.exit_code == 2 and "values.ms.decode.replicas: 'two' is not an integer" in r.stderr


@pytest.mark.parametrize("text", ["replicas: 2\nnamespace: a\nreplicas: 3\n",
                                  "values:\n  ms:\n    decode: {replicas: 1}\n    decode: {replicas: 2}\n"])
def test_config_file_rejects_duplicate_keys(tmp_path, text):
    with pytest.raises(ConfigError, match="is given twice"):
        load_settings({}, config=_config(tmp_path, text))


def test_config_file_and_set_offer_a_did_you_mean(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'replicas'"):
        load_settings({}, config=_config(tmp_path, "replica: 2\n"))
    with pytest.raises(ConfigError, match="did you mean 'namespace'"):
        load_settings({}, sets=["namespce=x"])
    with pytest.raises(ConfigError, match="not a release"):
        load_settings({}, config=_config(tmp_path, "values:\n  model: {a: 1}\n"))
