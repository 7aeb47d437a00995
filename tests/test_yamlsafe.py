"""yamlsafe: strings that Go/Helm's YAML 1.1 resolver would retype are always quoted (fault F7)."""

from __future__ import annotations

import pytest
import yaml

from llmd.render import yamlsafe

AMBIGUOUS = ["no", "No", "NO", "yes", "on", "off", "y", "n", "Y", "N", "true", "False", "null", "Null", "~", "",
             "1.10", "1e3", "1E3", "-1e3", "0x10", "0o17", "010", "1_000", ".inf", "-.inf", ".nan", "12:30",
             "1:20:30", "123", "-1", "+.5", "0", "2024-01-01", "=", "<<"]
PLAIN = ["v0.7.1", "1.2.3", "istio", "llm-d-inference-scheduling", "Llama-3.1-8B-Instruct", "900s", "16Gi",
         "nan", "infinity", "0s", "yes-please"]


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_ambiguous_strings_are_quoted_and_round_trip(text):
    out = yamlsafe.dump({"k": text})
    assert out.startswith(("k: \"", "k: '")), out
    assert yamlsafe.ambiguous(text)
    back = yamlsafe.load(out)["k"]
    assert back == text and isinstance(back, str)
    assert yaml.safe_load(out)["k"] == text  # PyYAML (1.1) agrees


@pytest.mark.parametrize("text", PLAIN)
def test_plain_strings_stay_plain_and_round_trip(text):
    out = yamlsafe.dump({"k": text})
    assert out == f"k: {text}\n"
    assert yamlsafe.load(out)["k"] == text


def test_go_like_loader_reads_what_pyyaml_misses():
    # These are why the loader exists: unquoted, Go would not read a string back.
    assert yamlsafe.load("a: y\nb: n\nc: 1e3\nd: 0o17\n") == {"a": True, "b": False, "c": 1000.0, "d": 15}
    assert yamlsafe.load("a: 1.10\nb: 010\nc: 12:30\nd: off\n") == {"a": 1.1, "b": 8, "c": 750, "d": False}


def test_multiline_strings_use_literal_blocks_and_round_trip():
    text = "apiVersion: x\nplugins:\n- type: queue-scorer\n"
    out = yamlsafe.dump({"cfg": text})
    assert out.startswith("cfg: |\n")
    assert yamlsafe.load(out) == {"cfg": text}


def test_non_strings_keep_their_types_and_no_anchors():
    shared = {"a": 1}
    data = {"i": 8000, "f": 0.95, "b": False, "none": None, "x": shared, "y": shared, "l": [1, "1"]}
    out = yamlsafe.dump(data)
    assert "&" not in out and "*" not in out
    assert yamlsafe.first_difference(data, yamlsafe.load(out)) is None


def test_first_difference_is_type_exact():
    assert yamlsafe.first_difference({"a": "1.10"}, {"a": 1.1}).startswith(".a: wrote '1.10' (str)")
    assert yamlsafe.first_difference({"a": "no"}, {"a": False}) is not None
    assert yamlsafe.first_difference([1, 2], [1]) == ": 2 items != 1"
    assert yamlsafe.first_difference({"a": 1, "b": 2}, {"b": 2, "a": 1}) is not None  # key order matters too
