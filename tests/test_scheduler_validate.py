"""`llmd scheduler validate`: every rule, with its position and fix; the guide's bad configs; the CLI contract."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from llmd.scheduler.validate import check_document_text, check_file, errors

FIXTURES = Path(__file__).parent / "fixtures" / "epp"
HEAD = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"


def findings(body: str, *, head: bool = True):
    return check_document_text((HEAD if head else "") + textwrap.dedent(body), file="t.yaml")


def one(body: str, *, head: bool = True):
    found = findings(body, head=head)
    assert len(found) == 1, [str(f) for f in found]
    return found[0]


VALID = """\
plugins:
- type: queue-scorer
- type: prefix-cache-scorer
  parameters: {blockSizeTokens: 16, autoTune: false}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: queue-scorer, weight: 1}
  - {pluginRef: prefix-cache-scorer, weight: 2.5}
  - {pluginRef: max-score-picker}
"""


def test_valid_config_has_no_findings():
    assert findings(VALID) == []


def test_missing_schedule_profiles_is_the_generated_default_profile():
    assert findings("plugins:\n- type: queue-scorer\n") == []


PRECISE_BARE = "plugins:\n- type: precise-prefix-cache-scorer\n  parameters:\n"
PRECISE = PRECISE_BARE + "    indexerConfig: {tokenizersPoolConfig: {modelName: m/x}}\n"  # the one required parameter
# (body, severity, path, message part, fix part, line, column); line 1-2 are apiVersion/kind
RULES = [
    ("apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins: [{type: queue-scorer}]\n",
     "error", "apiVersion", "only read by llm-d-router", "apiVersion: inference.networking.x-k8s.io/v1alpha1", 1, 13),
    ("apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPicker\nplugins: [{type: queue-scorer}]\n",
     "error", "kind", "kind 'EndpointPicker'", "kind: EndpointPickerConfig", 2, 7),
    ("plugins: [{type: queue-scorer}]\nschedulingProfile: []\n",
     "error", "schedulingProfile", "unknown key 'schedulingProfile'", "did you mean 'schedulingProfiles'?", 4, 1),
    ("plugins: [{type: queue-scorer}]\nflowControl: {maxBytes: 1}\n",
     "error", "flowControl", "featureGates does not enable it", "featureGates: [flowControl]", 4, 14),
    ("plugins: []\n", "error", "plugins", "non-empty list", "declare at least one", 3, 10),
    ("plugins:\n- type: queue-scorer\n  params: {}\n",
     "error", "plugins[0].params", "unknown key 'params' in a plugin", "did you mean 'parameters'?", 5, 3),
    ("plugins:\n- name: x\n", "error", "plugins[0]", "`type` is required", "registered plugin type", 4, 3),
    ("plugins:\n- type: kv-cache-scorer\n",
     "error", "plugins[0].type", "'kv-cache-scorer' is not registered", "use kv-cache-utilization-scorer", 4, 9),
    ("plugins:\n- type: round-robin-picker\n",
     "error", "plugins[0].type", "'round-robin-picker' is not registered", "use random-picker", 4, 9),
    ("plugins:\n- type: queue-scorrer\n",
     "error", "plugins[0].type", "'queue-scorrer' is not registered", "did you mean 'queue-scorer'?", 4, 9),
    ("plugins:\n- type: pd-profile-handler\n- type: queue-scorer\n",
     "warning", "plugins[0].type", "deprecated alias", "use disagg-profile-handler", 4, 9),
    ("plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSizeToken: 16}\n",
     "warning", "plugins[0].parameters.blockSizeToken", "does not take parameter 'blockSizeToken'; the EPP ignores it",
     "did you mean 'blockSizeTokens'?", 5, 16),
    ("plugins:\n- type: queue-scorer\n  parameters: {threshold: 3}\n",
     "warning", "plugins[0].parameters.threshold", "queue-scorer takes no parameters", "drop threshold", 5, 16),
    ("plugins:\n- type: prefix-cache-scorer\n  parameters: {hashBlockSize: 16}\n",
     "warning", "plugins[0].parameters.hashBlockSize", "ignores parameter 'hashBlockSize'", "use blockSizeTokens", 5,
     16),
    ("plugins:\n- type: prefix-cache-scorer\n  parameters: {mode: approximate}\n",
     "warning", "plugins[0].parameters.mode", "ignores `mode: approximate`", "drop `mode:`", 5, 16),
    ("plugins:\n- type: prefix-cache-scorer\n  parameters: {mode: cache_tracking}\n",
     "error", "plugins[0].parameters.mode", "has no `mode`", "precise-prefix-cache-scorer", 5, 16),
    ("plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: \"64\"}\n",
     "error", "plugins[0].parameters.blockSizeTokens", "must be an integer, got '64'", "blockSizeTokens: <int>", 5, 33),
    ("plugins:\n- type: prefix-cache-scorer\n  parameters: {autoTune: 1}\n",
     "error", "plugins[0].parameters.autoTune", "must be true or false", "autoTune: <bool>", 5, 26),
    ("plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSize: 64}\n",
     "error", "plugins[0].parameters.blockSize", "fail to initialise", "use blockSizeTokens", 5, 16),
    ("plugins:\n- type: queue-scorer\n  parameters: [1]\n",
     "error", "plugins[0].parameters", "must be a mapping", None, 5, 15),
    ("plugins:\n- type: queue-scorer\n- type: queue-scorer\n",
     "error", "plugins[1].type", "duplicate plugin name 'queue-scorer'", "distinct `name`", 5, 9),
    ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue\n",
     "error", "schedulingProfiles[0].plugins[0].pluginRef", "'queue' names no plugin",
     "did you mean 'queue-scorer'?", 7, 16),
    ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n- name: default\n  plugins:\n"
     "  - pluginRef: kv-cache-scorer\n",
     "error", "schedulingProfiles[0].plugins[0].pluginRef", "'kv-cache-scorer' names no plugin",
     "use kv-cache-utilization-scorer", 7, 16),
    ("plugins: [{type: queue-scorer}, {type: random-picker}]\nschedulingProfiles:\n- name: default\n  plugins:\n"
     "  - pluginRef: queue-scorer\n  - pluginRef: random-picker\n    weight: 2\n",
     "warning", "schedulingProfiles[0].plugins[1].weight", "random-picker is a picker: the EPP ignores its weight",
     "drop it", 9, 5),
    ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n- name: default\n  plugins:\n"
     "  - pluginRef: queue-scorer\n    weight: \"2\"\n",
     "error", "schedulingProfiles[0].plugins[0].weight", "weight '2' must be a number >= 0", "weight: 2", 8, 13),
    ("plugins: [{type: queue-scorer}, {type: random-picker}, {type: max-score-picker}]\nschedulingProfiles:\n"
     "- name: default\n  plugins:\n  - pluginRef: queue-scorer\n  - pluginRef: random-picker\n"
     "  - pluginRef: max-score-picker\n",
     "error", "schedulingProfiles[0].plugins", "references 2 pickers (random-picker, max-score-picker)",
     "exactly one picker", 6, 3),
    ("plugins: [{type: queue-scorer}, {type: random-picker}, {type: max-score-picker}]\n",
     "error", "plugins", "the generated default profile references 2 pickers", "exactly one picker", 3, 1),
    ("plugins: [{type: max-score-picker}]\nschedulingProfiles:\n- name: default\n  plugins:\n"
     "  - pluginRef: max-score-picker\n",
     "warning", "schedulingProfiles[0].plugins", "has no scorer: every endpoint scores 0", "random-picker", 6, 3),
    ("plugins: [{type: queue-scorer}, {type: single-profile-handler}]\nschedulingProfiles:\n- name: default\n"
     "  plugins:\n  - pluginRef: single-profile-handler\n",
     "error", "schedulingProfiles[0].plugins[0].pluginRef", "is a profile-handler; a profile lists only",
     "declare it under plugins only", 7, 16),
    ("plugins: [{type: queue-scorer}, {type: disagg-profile-handler}]\nschedulingProfiles:\n- name: a\n"
     "  plugins: [{pluginRef: queue-scorer}]\n- name: a\n  plugins: [{pluginRef: queue-scorer}]\n",
     "error", "schedulingProfiles[1].name", "duplicate profile name 'a'", None, 7, 9),
    ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n- name: a\n  plugins: [{pluginRef: queue-scorer}]\n"
     "- name: b\n  plugins: [{pluginRef: queue-scorer}]\n",
     "error", "schedulingProfiles", "2 profiles but no profile handler", "disagg-profile-handler", 4, 1),
    ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n- name: default\n  plugins:\n"
     "  - pluginRef: queue-scorer\n    wieght: 2\n",
     "error", "schedulingProfiles[0].plugins[0].wieght", "unknown key 'wieght'", "did you mean 'weight'?", 8, 5),
    ("plugins: [{type: prefix-cache-scorer}, {type: no-hit-lru-scorer}]\nschedulingProfiles:\n- name: default\n"
     "  plugins:\n  - pluginRef: no-hit-lru-scorer\n  - pluginRef: prefix-cache-scorer\n",
     "warning", "schedulingProfiles[0].plugins", "must be listed before it", "list prefix-cache-scorer before", 6, 3),
    ("plugins:\n- type: queue-scorer\n  type: kv-cache-utilization-scorer\n",
     "error", "plugins[0].type", "duplicate key 'type'", "keep one", 5, 3),
    # nested parameters of precise-prefix-cache-scorer (the v0.7.1 structs, docs/epp-plugins.md), checked recursively
    (PRECISE + "    tokenProcessorConfig: {blockSize: big}\n", "error",
     "plugins[0].parameters.tokenProcessorConfig.blockSize", "tokenProcessorConfig.blockSize must be an integer, "
     "got 'big'", "blockSize: <int>", 7, 39),
    (PRECISE + "    tokenProcessorConfig: {blocksize: \"32\"}\n", "error",  # Go's json matches any case
     "plugins[0].parameters.tokenProcessorConfig.blocksize", "must be an integer, got '32'", None, 7, 39),
    (PRECISE + "    tokenProcessorConfig: {blockSize: 64, blockSiz: 32}\n", "warning",
     "plugins[0].parameters.tokenProcessorConfig.blockSiz", "does not take parameter 'tokenProcessorConfig.blockSiz'; "
     "the EPP ignores it", "did you mean 'tokenProcessorConfig.blockSize'?", 7, 43),
    (PRECISE + "    tokenProcessorConfig: {hashSeed: \"42\"}\n", "error", "plugins[0].parameters.tokenProcessorConfig",
     "without blockSize leaves the block size 0", "vLLM's --block-size follows it", 7, 5),
    (PRECISE + "    tokenProcessorConfig: {blockSize: 0}\n", "error",
     "plugins[0].parameters.tokenProcessorConfig.blockSize", "blockSize must be greater than 0", None, 7, 39),
    (PRECISE + "    kvEventsConfig: {topicFilter: kv@, concurrency: \"4\"}\n", "error",
     "plugins[0].parameters.kvEventsConfig.concurrency", "kvEventsConfig.concurrency must be an integer", None, 7, 53),
    (PRECISE + "    kvEventsConfig: {discoverPods: 1}\n", "error", "plugins[0].parameters.kvEventsConfig.discoverPods",
     "must be true or false, got 1", None, 7, 36),
    (PRECISE + "    kvEventsConfig: tcp://*:5557\n", "error", "plugins[0].parameters.kvEventsConfig",
     "kvEventsConfig must be a mapping of zmqEndpoint", "kvEventsConfig: {zmqEndpoint: ...}", 7, 21),
    (PRECISE + "    kvEventsConfig: {zmqEndpiont: tcp://*:5557}\n", "warning",
     "plugins[0].parameters.kvEventsConfig.zmqEndpiont", "does not take parameter 'kvEventsConfig.zmqEndpiont'",
     "did you mean 'kvEventsConfig.zmqEndpoint'?", 7, 22),
    (PRECISE_BARE + "    indexerConfig:\n      tokenizersPoolConfig: {modelName: m/x}\n"
     "      speculativeIndexing: true\n",
     "warning", "plugins[0].parameters.indexerConfig.speculativeIndexing",
     "ignores parameter 'indexerConfig.speculativeIndexing'",
     "use speculativeIndexing: v0.7.1 reads speculativeIndexing at the top level", 8, 7),
    (PRECISE_BARE + "    indexerConfig:\n      tokenizersPoolConfig:\n        modelName: m/x\n"
     "        uds: {socketFile: 5}\n",
     "error", "plugins[0].parameters.indexerConfig.tokenizersPoolConfig.uds.socketFile",
     "indexerConfig.tokenizersPoolConfig.uds.socketFile must be a string, got 5", None, 9, 27),
    (PRECISE_BARE + "    indexerConfig:\n      tokenizersPoolConfig: {workersCount: 2}\n", "error",
     "plugins[0].parameters.indexerConfig.tokenizersPoolConfig", "needs indexerConfig.tokenizersPoolConfig.modelName",
     "tokenizersPoolConfig: {modelName: <the served model>}", 7, 7),
    ("plugins:\n- type: precise-prefix-cache-scorer\n", "error", "plugins[0].type",
     "without it the plugin fails to initialise", "--scheduler precise-prefix sets it", 4, 9),
    ("plugins:\n- type: queue-scorer\n- type: tokenizer\n  parameters:\n    udsTokenizerConfig: {socketFile: 1}\n",
     "error", "plugins[1].parameters.udsTokenizerConfig.socketFile", "udsTokenizerConfig.socketFile must be a string",
     None, 7, 38),
    ("plugins: [\n", "error", "", "not valid YAML", "fix the YAML syntax", 4, 1),
]


@pytest.mark.parametrize(("body", "severity", "path", "message", "fix", "line", "column"), RULES,
                         ids=[r[3][:40] for r in RULES])
def test_every_rule_with_position_and_fix(body, severity, path, message, fix, line, column):
    f = one(body, head=not body.startswith("apiVersion"))
    assert (f.severity, f.path) == (severity, path), str(f)
    assert message in f.message, str(f)
    if fix:
        assert fix in (f.fix or ""), str(f)
    assert (f.line, f.column) == (line, column), str(f)
    assert str(f).startswith(f"t.yaml:{line}:{column}: {severity}: ")


def test_nested_nulls_and_the_profile_shape_pass():
    """`local: null` (the guide's spelling of "not this tokenizer") sets nothing; the precise-prefix profile's shape
    has no finding at all."""
    assert findings(PRECISE_BARE + "    tokenProcessorConfig: {blockSize: 64, hashSeed: \"42\"}\n    indexerConfig:\n"
                    "      tokenizersPoolConfig: {modelName: m/x, local: null, hf: null, uds: {socketFile: /tmp/s}}\n"
                    "      kvBlockIndexConfig: {enableMetrics: true, metricsLoggingInterval: 60000000000}\n"
                    "    kvEventsConfig: {topicFilter: kv@, concurrency: 4, discoverPods: false, zmqEndpoint: x}\n"
                    "    speculativeIndexing: true\n    speculativeTTL: 2s\n") == []


def test_every_problem_at_once():
    found = findings("plugins:\n- type: kv-cache-scorer\n- type: round-robin-picker\n- type: queue-scorer\n"
                     "  parameters: {x: 1}\nscorers: []\n")
    assert [(f.severity, f.path) for f in found] == [
        ("error", "scorers"), ("error", "plugins[0].type"), ("error", "plugins[1].type"),
        ("warning", "plugins[2].parameters.x")]


def test_not_a_mapping():
    f = one("- plugins\n", head=False)
    assert "must be a mapping, got list" in f.message


# ---- the guide's bad examples -------------------------------------------------------------------

def test_guide_load_aware_example_is_caught():
    found = check_file(str(FIXTURES / "guide-load-aware.yaml"))
    by_path = {f.path: f for f in found}
    assert set(by_path) == {"plugins[1].type", "plugins[2].parameters.mode"}
    assert by_path["plugins[1].type"].severity == "error"
    assert "use kv-cache-utilization-scorer" in by_path["plugins[1].type"].fix
    assert (by_path["plugins[1].type"].line, by_path["plugins[1].type"].column) == (6, 9)
    assert by_path["plugins[2].parameters.mode"].severity == "warning"
    assert "drop `mode:`" in by_path["plugins[2].parameters.mode"].fix


def test_guide_round_robin_example_is_caught():
    (f,) = check_file(str(FIXTURES / "guide-round-robin.yaml"))
    assert f.severity == "error" and (f.line, f.column) == (5, 9)
    assert "use random-picker" in f.fix and "no round-robin picker" in f.fix


def test_guide_values_file_positions_point_into_the_block():
    found = check_file(str(FIXTURES / "guide-values.yaml"))
    assert [(f.severity, f.path, f.line, f.column) for f in found] == [
        ("error", "pluginsCustomConfig[custom-plugins.yaml].plugins[0].type", 8, 15),
        ("error", "pluginsCustomConfig[custom-plugins.yaml].plugins[1].parameters.mode", 11, 11),
    ]
    lines = (FIXTURES / "guide-values.yaml").read_text().splitlines()
    assert lines[7][14:].startswith("kv-cache-scorer")  # line 8, column 15 really is the bad type
    assert lines[10][10:].startswith("mode")


def test_values_file_pointing_at_a_missing_config():
    found = check_document_text("inferenceExtension:\n  pluginsConfigFile: nope.yaml\n  pluginsCustomConfig:\n"
                                "    a.yaml: |\n      " + HEAD.replace("\n", "\n      ") +
                                "plugins: [{type: queue-scorer}]\n", file="v.yaml")
    assert [(f.path, f.line) for f in errors(found)] == [("inferenceExtension.pluginsConfigFile", 2)]


# What the v0.7.1 sources decode but these samples set where the pinned image never reads it (docs/epp-plugins.md):
# kv-cache v0.7.1 has no indexerConfig.tokenProcessorConfig, the image has no embedded (hf) tokenizer, and the
# scorer reads speculativeIndexing at the top level.
IGNORED_IN_UPSTREAM_SAMPLES = {
    "sim-epp-kvcache-config.yaml": [
        ("plugins[0].parameters.indexerConfig.tokenProcessorConfig", 11, 7),
        ("plugins[0].parameters.indexerConfig.tokenizersPoolConfig.hf", 16, 9)],
    "values.yaml": [
        ("pluginsCustomConfig[precise-prefix-cache-config.yaml].plugins[2].parameters.indexerConfig."
         "speculativeIndexing", 81, 15)],
}


# ... and one the v0.7.1 factory refuses: its precise sample has no tokenizersPoolConfig.modelName ("modelName is
# required in indexerConfig.tokenizersPoolConfig", pkg/plugins/scorer/precise_prefix_cache.go).
REFUSED_UPSTREAM_SAMPLES = {"epp-precise-prefix-cache-config.yaml": [("plugins[2].parameters.indexerConfig", 13, 7)]}


def test_upstream_configs_of_the_pinned_release_pass(upstream):
    files = sorted((upstream / "llm-d-inference-scheduler-v0.7.1").glob("*.yaml"))
    files.append(upstream / "llm-d-guides-v0.6/precise-prefix-cache-aware/gaie-kv-events/values.yaml")
    assert len(files) >= 5
    for f in files:
        found = check_file(str(f))
        assert [(e.path, e.line, e.column) for e in errors(found)] == REFUSED_UPSTREAM_SAMPLES.get(f.name, []), f.name
        assert all("tokenizersPoolConfig.modelName" in e.message for e in errors(found))
        warnings = [w for w in found if w.severity == "warning"]
        assert [(w.path, w.line, w.column) for w in warnings] == IGNORED_IN_UPSTREAM_SAMPLES.get(f.name, []), f.name
        assert all("ignores parameter" in w.message for w in warnings), f.name


# ---- CLI ----------------------------------------------------------------------------------------

def test_cli_exit_2_lists_every_problem_with_positions(cli):
    r = cli("scheduler", "validate", str(FIXTURES / "guide-load-aware.yaml"), str(FIXTURES / "guide-round-robin.yaml"))
    assert r.exit_code == 2
    assert f"{FIXTURES}/guide-load-aware.yaml:6:9: error: plugins[1].type" in r.stderr
    assert f"{FIXTURES}/guide-round-robin.yaml:5:9: error" in r.stderr
    assert "guide-load-aware.yaml:9:5: warning" in r.stderr
    assert "2 error(s), 1 warning(s) in 2 of 2 file(s)" in r.stderr


def test_cli_warnings_alone_exit_0(cli, tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text(HEAD + "plugins:\n- type: queue-scorer\n  parameters: {x: 1}\n")
    r = cli("scheduler", "validate", str(f))
    assert r.exit_code == 0, r.stderr
    assert "warning" in r.stderr and "the EPP accepts it (with warnings)" in r.stderr


def test_cli_json(cli, tmp_path):
    r = cli("scheduler", "validate", "--json", str(FIXTURES / "guide-round-robin.yaml"), str(tmp_path / "absent.yaml"))
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["valid"] is False and doc["errors"] == 2 and doc["warnings"] == 0
    first = doc["findings"][0]
    assert {k: first[k] for k in ("line", "column", "severity", "path")} == {
        "line": 5, "column": 9, "severity": "error", "path": "plugins[0].type"}
    assert "cannot read the file" in doc["findings"][1]["message"]


def test_cli_valid_file(cli, upstream):
    r = cli("scheduler", "validate", str(upstream / "llm-d-inference-scheduler-v0.7.1" / "epp-config.yaml"))
    assert r.exit_code == 0 and "the EPP accepts it" in r.stderr
