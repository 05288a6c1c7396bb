"""tcnn / instant-ngp JSON configs: comments, RFC 7386 ``parent`` merge patches, and errors that name the file."""

from __future__ import annotations

import json

import pytest

from ingp import load_config
from ingp.config import merge_patch, parse_config_text, strip_comments
from ingp.errors import ConfigError


# ---- comments --------------------------------------------------------------------------------------------------------

def test_comments_are_stripped_but_strings_kept():
    text = ('{"url": "http://example.org/a//b", // a line comment\n'
            ' /* a block\n comment */ "glob": "src/*.json /* not a comment */",\n'
            ' "quote": "say \\"//hi\\"", "n": 2 /* trailing */}')
    assert json.loads(strip_comments(text)) == {"url": "http://example.org/a//b",
                                                "glob": "src/*.json /* not a comment */",
                                                "quote": 'say "//hi"', "n": 2}


def test_stripping_keeps_line_and_column_positions():
    text = '{/* c */ "a": 1, // x\n  "b": 2}'
    stripped = strip_comments(text)
    assert len(stripped) == len(text)
    assert stripped.split("\n")[0].index('"a"') == text.split("\n")[0].index('"a"')
    with pytest.raises(ConfigError, match=r"cfg\.json: malformed JSON at line 2, column 8"):
        parse_config_text('{/* comment */ "a": 1,\n  "b": }', "cfg.json")


def test_unterminated_block_comment_is_an_error():
    with pytest.raises(ConfigError, match=r"x\.json: unterminated /\* comment starting at line 2, column 3"):
        parse_config_text('{"a": 1,\n  /* never closed\n}', "x.json")


def test_file_with_comments_and_bom(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('\ufeff// header\n{"loss": {"otype": "L2"} /* why */, "lr": 1e-2}', encoding="utf-8")
    assert load_config(path) == {"loss": {"otype": "L2"}, "lr": 0.01}
    assert load_config(str(path)) == {"loss": {"otype": "L2"}, "lr": 0.01}


# ---- merge patch -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, patch, result", [  # RFC 7386 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386(target, patch, result):
    assert merge_patch(target, patch) == result


def test_merge_patch_is_pure():
    target = {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": {"f": 3}}
    patch = {"a": None, "b": {"c": 5, "g": {"h": 6}}}
    merged = merge_patch(target, patch)
    assert merged == {"b": {"c": 5, "d": [1, 2], "g": {"h": 6}}, "e": {"f": 3}}
    assert target == {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": {"f": 3}}
    assert patch == {"a": None, "b": {"c": 5, "g": {"h": 6}}}
    merged["b"]["d"].append(3)
    merged["e"]["f"] = 4
    merged["b"]["g"]["h"] = 7
    assert target["b"]["d"] == [1, 2] and target["e"]["f"] == 3 and patch["b"]["g"]["h"] == 6


# ---- parent ----------------------------------------------------------------------------------------------------------

BASE = """{
    // an instant-ngp-style base config
    "loss": {"otype": "Huber"},
    "optimizer": {"otype": "Ema", "decay": 0.95, "nested": {"otype": "ExponentialDecay", "decay_start": 20000,
        "decay_interval": 10000, "decay_base": 0.33, "nested": {"otype": "Adam", "learning_rate": 1e-2,
        "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15, "l2_reg": 1e-6}}},
    "encoding": {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 4, "log2_hashmap_size": 19,
                 "base_resolution": 16},
    "network": {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 1},
    "dir_encoding": {"otype": "Composite", "nested": [{"otype": "SphericalHarmonics", "degree": 4}]}
}"""


def test_parent_merge_nested_null_and_arrays(tmp_path):
    (tmp_path / "base.json").write_text(BASE)
    (tmp_path / "big.json").write_text("""{
        "parent": "base.json",
        "encoding": {"n_levels": 16, "log2_hashmap_size": 21, "per_level_scale": null},
        "loss": null,
        "optimizer": {"nested": {"nested": {"learning_rate": 1e-3, "l2_reg": null}}},
        "dir_encoding": {"nested": [{"otype": "Frequency"}]}
    }""")
    config = load_config(tmp_path / "big.json")
    assert "parent" not in config and "loss" not in config
    assert config["encoding"] == {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 4,
                                  "log2_hashmap_size": 21, "base_resolution": 16}
    adam = config["optimizer"]["nested"]["nested"]
    assert adam == {"otype": "Adam", "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15}
    assert config["optimizer"]["decay"] == 0.95 and config["optimizer"]["nested"]["decay_base"] == 0.33
    assert config["dir_encoding"] == {"otype": "Composite", "nested": [{"otype": "Frequency"}]}  # arrays replace
    assert config["network"] == {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 1}


def test_parent_paths_are_relative_to_each_file(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "nerf" / "variants").mkdir(parents=True)
    (tmp_path / "common" / "root.json").write_text('{"a": 1, "b": {"c": 2, "d": 3}}')
    # nerf/base.json's parent is relative to nerf/, the variant's parent relative to nerf/variants/
    (tmp_path / "nerf" / "base.json").write_text('{"parent": "../common/root.json", "b": {"c": 20}, "e": 5}')
    (tmp_path / "nerf" / "variants" / "small.json").write_text('{"parent": "../base.json", "b": {"d": null}}')
    assert load_config(tmp_path / "nerf" / "variants" / "small.json") == {"a": 1, "b": {"c": 20}, "e": 5}


def test_dict_source_with_parent_and_no_mutation(tmp_path):
    (tmp_path / "base.json").write_text('{"x": {"y": 1, "z": 2}}')
    source = {"parent": "base.json", "x": {"z": None, "w": 3}}
    assert load_config(source, base_dir=tmp_path) == {"x": {"y": 1, "w": 3}}
    assert source == {"parent": "base.json", "x": {"z": None, "w": 3}}
    plain = {"a": {"b": [1]}}
    copy = load_config(plain)
    copy["a"]["b"].append(2)
    assert plain == {"a": {"b": [1]}}


# ---- errors ----------------------------------------------------------------------------------------------------------

def test_malformed_json_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  "b": ]\n}')
    with pytest.raises(ConfigError, match=r"bad\.json: malformed JSON at line 3, column 8"):
        load_config(bad)


def test_malformed_parent_names_the_parent(tmp_path):
    (tmp_path / "base.json").write_text('{"a": 1,}')
    (tmp_path / "child.json").write_text('{"parent": "base.json"}')
    with pytest.raises(ConfigError, match=r"base\.json: malformed JSON at line 1"):
        load_config(tmp_path / "child.json")


def test_missing_file_and_missing_parent(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.json: config file not found"):
        load_config(tmp_path / "missing.json")
    orphan = tmp_path / "orphan.json"
    orphan.write_text('{"parent": "nowhere.json"}')
    with pytest.raises(ConfigError, match=r"orphan\.json: parent config 'nowhere\.json' not found"):
        load_config(orphan)
    (tmp_path / "typed.json").write_text('{"parent": 3}')
    with pytest.raises(ConfigError, match=r"typed\.json: 'parent' must be a file name"):
        load_config(tmp_path / "typed.json")


def test_parent_cycles_are_detected(tmp_path):
    (tmp_path / "a.json").write_text('{"parent": "sub/b.json"}')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text('{"parent": "../a.json"}')
    with pytest.raises(ConfigError, match=r"cycle: .*a\.json -> .*b\.json -> .*a\.json"):
        load_config(tmp_path / "a.json")
    (tmp_path / "self.json").write_text('{"parent": "./self.json"}')
    with pytest.raises(ConfigError, match=r"self\.json.*cycle"):
        load_config(tmp_path / "self.json")


def test_top_level_must_be_an_object(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"list\.json: a config must be a JSON object"):
        load_config(tmp_path / "list.json")
    assert issubclass(ConfigError, ValueError)
