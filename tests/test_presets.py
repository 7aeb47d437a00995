"""The preset data is the one source of environment and accelerator facts; the choices of llmd.settings name
exactly its entries, and every fact a command reads comes from it."""

from __future__ import annotations

import pytest

from llmd import presets
from llmd.presets import facts
from llmd.render import layers
from llmd.settings import ACCELERATORS, ENVIRONMENTS, Settings


def test_choices_name_exactly_the_preset_entries_in_order():
    assert facts.environment_names() == ENVIRONMENTS
    assert facts.accelerator_names() == ACCELERATORS


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_environment_has_its_facts(name):
    env = facts.environment(name)
    assert env.gateway_class and env.system_namespace and env.install.strip()
    assert env.system_namespace in facts.protected_namespaces()
    # The infra chart's Gateway uses the class preflight looks for (when the layer names one).
    layer_class = layers.layer("infra", name)["gateway"].get("gatewayClassName")
    assert layer_class in (None, env.gateway_class)
    gateway = Settings(environment=name).gateway_name
    assert Settings(environment=name).gateway_service == env.service_name(gateway)
    if env.service:
        assert gateway in env.service_name(gateway)


@pytest.mark.parametrize("name", ACCELERATORS)
def test_every_accelerator_type_maps_to_its_resource_or_to_none(name):
    acc = facts.accelerator(name)
    gpu_types = presets.load("accelerators")["gpu_resources"]
    assert (acc.gpu_resource is None) == (acc.accelerator_type not in gpu_types)
    assert Settings(accelerator=name).uses_gpu == (acc.gpu_resource is not None)


def test_known_facts_of_the_data():
    assert Settings(environment="istio").gateway_service == "infra-inference-scheduling-inference-gateway-istio"
    assert Settings(environment="gke").gateway_service is None
    assert facts.accelerator("amd").gpu_resource == "amd.com/gpu"
    assert facts.accelerator("tpu-v6e").gpu_resource == "google.com/tpu"
    assert facts.accelerator("nvidia-h100").gpu_resource == "nvidia.com/gpu"
    assert facts.accelerator("sim").gpu_resource is None
    assert {"default", "kube-system", "istio-system", "agentgateway-system"} <= facts.protected_namespaces()
    assert facts.service_naming() == "istio names it <gateway>-istio, agentgateway/kgateway name it <gateway>"


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_environment_layers_equal_the_upstream_guide_values_they_come_from(name, upstream):
    """charts-values/{infra,gaie}/<env>.yaml carry the guide's gateway-provider values unchanged (its file mixes the
    releases' keys in one document: each layer's top-level keys are compared where the guide sets them)."""
    import yaml

    guide = yaml.safe_load((upstream / "llm-d-guides-v0.6" / "prereq" / "gateway-provider" / "common-configurations"
                            / f"{name}.yaml").read_text())
    infra, gaie = layers.layer("infra", name), layers.layer("gaie", name)
    assert infra["gateway"] == guide["gateway"]
    if "provider" in guide:
        assert gaie["provider"] == guide["provider"]
    else:  # the guide leaves the chart default; llmd names it
        assert gaie["provider"] == {"name": "none"}
