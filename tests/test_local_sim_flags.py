"""The local replicas' `llmd sim` flags: presets/local.yaml with `--set local.sim.<flag>=V` / `local: {sim: ...}` over
them, checked against the sim's own options (did-you-mean, the option's parser, the sim's config checks) at settings
time: bad input is exit 2 before any process starts."""

from __future__ import annotations

import pytest

from llmd import presets
from llmd.errors import ConfigError
from llmd.platform import sim_flags
from llmd.platform.local import sim_flags as replica_flags
from llmd.settings import load_settings


def test_the_preset_names_every_flag_as_the_sim_spells_it_and_passes_the_sims_checks():
    preset = presets.load("local")["sim"]
    assert all(sim_flags.canonical(k, "preset") == k for k in preset)
    sim_flags.check(sim_flags.merged(), "presets/local.yaml")  # raises on a preset the sim would refuse
    assert replica_flags(load_settings({}, environ={})) == sim_flags.argv(preset)


def test_set_and_config_file_override_the_preset_last_one_winning(tmp_path):
    cfg = tmp_path / "llmd.yaml"
    cfg.write_text("local:\n  sim:\n    kv_cache_size: 256\n    max-num-seqs: 2\n    fault: [stall=3:0.1]\n")
    s = load_settings({}, config=str(cfg), environ={},
                      sets=["local.sim.kv-cache-size=1024", "local.sim.enable-kvcache=false",
                            "local.sim.time-to-first-token=5ms"])
    assert dict(s.local_sim) == {"max-num-seqs": "2", "fault": ("stall=3:0.1",), "kv-cache-size": "1024",
                                 "enable-kvcache": False, "ttft": "5ms"}
    assert s.sources["local_sim"] == f"config file {cfg} and --set"
    argv = replica_flags(s)
    assert argv[argv.index("--kv-cache-size") + 1] == "1024" and argv[argv.index("--max-num-seqs") + 1] == "2"
    assert "--enable-kvcache" not in argv and "--kv-wait" in argv  # a switch turned off; the preset's others stay
    assert argv[argv.index("--fault") + 1] == "stall=3:0.1" and argv[argv.index("--ttft") + 1] == "5ms"
    assert s.to_dict()["local_sim"]["kv-cache-size"] == "1024"  # `llmd config` shows them


@pytest.mark.parametrize(("expr", "needle"), [
    ("local.sim.kv-cache-sise=1024", "'kv-cache-sise' is not a flag of `llmd sim`; did you mean 'kv-cache-size'?"),
    ("local.sim.kv-cache-size=lots", "--set local.sim.kv-cache-size: --kv-cache-size 'lots': 'lots' is not a "
                                     "valid int"),
    ("local.sim.itl=fast", "--itl: invalid duration 'fast'"),
    ("local.sim.kv-wait=yes", "--kv-wait is a switch: give true or false, not 'yes'"),
    ("local.sim.block-size=7", "block-size 7 must be one of 8,16,32,64,128"),
    ("local.sim.ttft-std=10ms", "ttft-std 10ms must be <= 30% of the mean"),
    ("local.sim.fault=bogus", "unknown fault kind 'bogus'"),
    ("local.sim.port=9000", "--port of the local replicas is set by the local platform"),
    ("local.sim.max-model-len=64", "use --max-model-len"),
    ("local.sim=1", "local-platform paths look like local.sim.<flag>"),
    ("local.kv=1", "local-platform paths look like local.sim.<flag>"),
])
def test_bad_overrides_are_exit_2_naming_the_override(expr, needle):
    with pytest.raises(ConfigError) as exc:
        load_settings({"platform": "local"}, sets=[expr], environ={})
    assert needle in str(exc.value)


def test_config_file_local_must_be_sim_flags(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("local:\n  replicas: 2\n")
    with pytest.raises(ConfigError, match="local must hold only sim"):
        load_settings({}, config=str(cfg), environ={})
    cfg.write_text("local:\n  sim:\n    kv-cache-sise: 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml: local.sim.kv-cache-sise: .*did you mean 'kv-cache-size'"):
        load_settings({}, config=str(cfg), environ={})


def test_deploy_with_a_bad_override_starts_nothing(cli, tmp_path):
    r = cli("deploy", "--platform", "local", "--set", "local.sim.max-num-seq=8")
    assert r.exit_code == 2 and "did you mean 'max-num-seqs'" in r.stderr
    assert not (tmp_path / "state" / "local").exists()


def test_the_docs_table_is_the_preset():
    """docs/local-platform.md lists every flag the preset sets with its value: the documented defaults."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "local-platform.md").read_text(encoding="utf-8")
    table = doc[doc.index("| flag | preset | what it models |"):]
    table = table[:table.index("\n\n")]
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+?) \|", table, flags=re.M))
    preset = {k: str(v).lower() for k, v in presets.load("local")["sim"].items()}
    assert rows == preset


def test_deploy_help_gives_the_local_replicas_default(cli):
    r = cli("deploy", "--help")
    text = " ".join(r.stdout.split())  # help wraps at 80 columns
    local = presets.load("local")["replicas"]
    assert f"(--platform local: llmd sim processes, {local} unless given) [default: 4]" in text
    assert "local.sim.kv-cache-size=1024" in text
