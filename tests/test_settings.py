"""Settings: layering, provenance, validation (fault rows F1-F9)."""

from __future__ import annotations

import pytest

from llmd.errors import ConfigError, ExitCode
from llmd.settings import Settings, load_settings


def test_defaults_are_the_tested_setup():
    s = load_settings({}, environ={})
    assert (s.model, s.replicas, s.tensor_parallel, s.max_model_len) == ("meta-llama/Llama-3.1-8B-Instruct", 4, 1, 4096)
    assert (s.accelerator, s.environment, s.namespace) == ("nvidia-l40s", "istio", "llm-d-inference-scheduling")
    assert (s.release_postfix, s.model_cache, s.pvc_size) == ("inference-scheduling", "pvc", "50Gi")
    assert s.gateway_service == "infra-inference-scheduling-inference-gateway-istio"
    assert s.decode_deployment == "ms-inference-scheduling-llm-d-modelservice-decode"
    assert s.epp_name == "gaie-inference-scheduling-epp"


def test_precedence_default_config_env_flag_set(tmp_path):
    cfg = tmp_path / "llmd.yaml"
    cfg.write_text("replicas: 2\nnamespace: from-file\nmodel: org/file-model\npvc-size: 10Gi\n")
    env = {"LLMD_REPLICAS": "3", "NAMESPACE": "legacy-ns", "LLMD_NAMESPACE": "env-ns"}
    s = load_settings({"replicas": 5}, sets=["pvc_size=20Gi"], config=str(cfg), environ=env)
    assert s.replicas == 5 and s.sources["replicas"] == "flag --replicas"
    assert s.namespace == "env-ns" and s.sources["namespace"] == "env LLMD_NAMESPACE"
    assert s.model == "org/file-model" and s.sources["model"].startswith("config file")
    assert s.pvc_size == "20Gi" and s.sources["pvc_size"] == "--set pvc_size"
    assert "tensor_parallel" not in s.sources  # default


def test_legacy_shell_guide_variables():
    s = load_settings({}, environ={"NAMESPACE": "team-a", "RELEASE_NAME_POSTFIX": "demo", "KUBECONFIG": "/k/cfg"})
    assert (s.namespace, s.release_postfix, s.kubeconfig) == ("team-a", "demo", "/k/cfg")
    assert s.gateway_name == "infra-demo-inference-gateway"


def test_config_file_keeps_ambiguous_scalars_as_strings(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("namespace: 123\nrelease_postfix: no-x\n")
    s = load_settings({}, config=str(cfg), environ={})
    assert s.namespace == "123" and isinstance(s.namespace, str)


def test_chart_value_overrides_parse_yaml():
    s = load_settings({}, sets=["values.ms.decode.replicas=2", "values.gaie.inferenceExtension.flags.v=3"], environ={})
    assert ("ms", "decode.replicas", 2) in s.value_overrides
    assert ("gaie", "inferenceExtension.flags.v", 3) in s.value_overrides


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"namespace": "Foo_Bar"}, "try 'foo-bar'"),  # F1
        ({"namespace": "a" * 64}, "64 characters, the limit is 63"),  # F2
        ({"namespace": "--kubeconfig=/tmp/x"}, "starts with '-'"),  # F3
        ({"release_postfix": "a-much-too-long-release-postfix-x"}, "derived names are too long"),  # F4
        ({"release_postfix": "9lives"}, "must start with a letter"),  # F5
        ({"model": "org/model\nname"}, "not a Hugging Face repo id"),  # F6
        ({"model": "{{ 7*7 }}"}, "not a Hugging Face repo id"),
        ({"model": "../../etc/passwd"}, "not a Hugging Face repo id"),
        ({"model": 'org/"quoted"'}, "not a Hugging Face repo id"),
        ({"model": "org/a: b"}, "not a Hugging Face repo id"),
        ({"model": "org/" + "m" * 97}, "each part at most 96"),
        ({"storage_class": "Fast_SSD"}, "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'"),
        ({"environment": "nginx"}, "not one of istio"),
        ({"accelerator": "tpu-v9"}, "not one of"),
        ({"replicas": -1}, "integer from 0"),
        ({"gpu_memory_utilization": 1.5}, "from 0.05 to 1.0"),
        ({"pvc_size": "lots"}, "Kubernetes quantity"),
        ({"accelerator": "sim", "tensor_parallel": 2}, "no tensor parallelism"),
        ({"no_hf_token": True, "hf_token_file": "token.txt"}, "contradicts no_hf_token; drop one"),
    ],
)
def test_bad_input_is_rejected_with_the_rule_and_a_fix(flags, needle):
    with pytest.raises(ConfigError) as err:
        load_settings(flags, environ={})
    assert err.value.exit_code == ExitCode.USAGE
    assert needle in err.value.message


def test_derived_name_lengths_are_listed():
    with pytest.raises(ConfigError) as err:
        load_settings({"release_postfix": "p" * 40}, environ={})
    text = err.value.message
    assert "decode deployment" in text and "(limit 52)" in text


def test_type_errors_name_the_source():
    with pytest.raises(ConfigError, match=r"replicas: 'four' \(from env LLMD_REPLICAS\) is not an integer$") as err:
        load_settings({}, environ={"LLMD_REPLICAS": "four"})
    assert err.value.hint == "give replicas an integer"
    with pytest.raises(ConfigError, match=r"monitoring: 'maybe' \(from --set monitoring\) is not true or false$"):
        load_settings({}, sets=["monitoring=maybe"], environ={})


def test_unknown_config_key_and_set_path(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("replica: 2\n")
    with pytest.raises(ConfigError, match="unknown setting 'replica'"):
        load_settings({}, config=str(cfg), environ={})
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, sets=["nope=1"], environ={})
    with pytest.raises(ConfigError, match=r"values\.<infra\|gaie\|ms>"):
        load_settings({}, sets=["values.other.x=1"], environ={})


class TestToken:
    def test_missing_token_when_needed(self):  # F8
        with pytest.raises(ConfigError, match="set HF_TOKEN or pass --hf-token-file"):
            load_settings({}, environ={}, need_token=True)

    def test_no_token_needed_for_public_models_or_sim(self):
        assert load_settings({"no_hf_token": True}, environ={}, need_token=True).hf_token is None
        assert load_settings({"accelerator": "sim"}, environ={}, need_token=True).hf_token is None

    @pytest.mark.parametrize("raw", ["", "   ", "\n"])
    def test_empty_token(self, raw):  # F9
        with pytest.raises(ConfigError, match="empty"):
            load_settings({}, environ={"HF_TOKEN": raw}, need_token=True)

    def test_trailing_newline_is_stripped_and_token_redacted(self):
        from llmd.redact import redact

        s = load_settings({}, environ={"HF_TOKEN": "hf_canaryCANARYcanary1234\n"}, need_token=True)
        assert s.hf_token == "hf_canaryCANARYcanary1234"
        assert "canary" not in repr(s) and "canary" not in str(s.to_dict())
        assert redact("token=hf_canaryCANARYcanary1234") == "token=***"

    def test_token_file_mode_warning(self, tmp_path):
        f = tmp_path / "tok"
        f.write_text("secret-token-value\n")
        f.chmod(0o644)
        warnings = []
        s = load_settings({"hf_token_file": str(f)}, environ={}, need_token=True, warn=warnings.append)
        assert s.hf_token == "secret-token-value"
        assert warnings and "chmod 600" in warnings[0]


def test_settings_is_frozen():
    s = Settings()
    with pytest.raises(AttributeError):
        s.namespace = "x"  # type: ignore[misc]


def test_config_command_shows_sources(cli):
    r = cli("config", "--json", "-n", "team-b", "--set", "replicas=2")
    assert r.exit_code == 0, r.stderr
    import json

    doc = json.loads(r.stdout)
    assert doc["settings"]["namespace"] == {"value": "team-b", "source": "flag --namespace"}
    assert doc["settings"]["replicas"] == {"value": 2, "source": "--set replicas"}
    assert doc["names"]["gateway_service"].endswith("-inference-gateway-istio")
    # every object llmd itself creates is named too (what `kubectl get` needs when debugging by hand)
    assert {k: doc["names"][k] for k in ("hf_token_secret", "model_cache_pvc", "model_download_job")} == {
        "hf_token_secret": "llm-d-hf-token-inference-scheduling", "model_cache_pvc": "model-cache-inference-scheduling",
        "model_download_job": "model-download-inference-scheduling"}


def test_config_table_lists_the_releases_as_names_not_a_python_list(cli):
    r = cli("config", "--release-postfix", "demo")
    assert r.exit_code == 0, r.stderr
    assert "['infra-demo'" not in r.stderr
    assert "infra-demo, gaie-demo, ms-demo" in " ".join(r.stderr.split())


def test_config_command_bad_input_exit_2(cli):
    r = cli("config", "-n", "Bad_NS")
    assert r.exit_code == 2
    assert "DNS-1123" in r.stderr and "foo" not in r.stdout


@pytest.mark.parametrize(("raw", "expected"), [
    ("1.10", "1.10"), ("0.95", 0.95), ("3", 3), ("no", "no"), ("on", "on"),
    ("true", True), ("1e3", "1e3"), ("[a, b]", ["a", "b"]), ('"1.5"', "1.5"),
])
def test_set_values_keep_what_the_user_typed(raw, expected):
    s = load_settings({}, sets=[f"values.gaie.inferenceExtension.image.tag={raw}"], environ={})
    assert s.value_overrides[0][2] == expected


def test_command_options_keep_help_and_short_aliases(cli):
    r = cli("config", "--help")
    assert r.exit_code == 0
    assert "--json" in r.stdout and "JSON document" in r.stdout


def test_hf_token_secret_is_per_release_postfix():
    """Two stacks in one namespace each own their token Secret: one's cleanup cannot remove the other's."""
    import json

    from llmd.ops.deploy import secret_manifest
    from llmd.render import render_bundle

    a = load_settings({"release_postfix": "a"}, environ={"HF_TOKEN": "hf_" + "a" * 30})
    b = load_settings({"release_postfix": "b"}, environ={"HF_TOKEN": "hf_" + "b" * 30})
    assert (a.hf_secret_name, b.hf_secret_name) == ("llm-d-hf-token-a", "llm-d-hf-token-b")
    assert a.derived_names()["hf token secret"] == ("llm-d-hf-token-a", 253)
    for s in (a, b):
        meta = json.loads(secret_manifest(s))["metadata"]
        assert meta["name"] == s.hf_secret_name and meta["labels"]["app.kubernetes.io/instance"] == s.release_postfix
        bundle = render_bundle(s)  # the model server and the download Job read the same Secret
        assert bundle.manifest_docs("values/ms.yaml")[0]["modelArtifacts"]["authSecretName"] == s.hf_secret_name
        job = bundle.manifest_docs("manifests/model-download-job.yaml")[0]
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == s.hf_secret_name
