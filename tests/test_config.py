"""Config loading: inheritance, overrides, errors that name the key and the file, hashing, derived values."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from fr.config import (CHOICES, ConfigError, ExperimentCfg, OptimCfg, config_hash, derive, dump_yaml, from_dict,
                       load_config, num_train_images, parse_override, to_dict)
from fr.engine.schedule import LRFactor
from fr.heads import create_head
from fr.registry import check_known

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def tree(tmp_path):
    base = write(tmp_path / "base" / "data.yaml", {"data": {"batch_size": 64, "train": "synthetic"},
                                                   "optim": {"lr": 0.2, "weight_decay": 1e-4}})
    sched = write(tmp_path / "base" / "sched.yaml", {"schedule": {"kind": "multistep", "epochs": 10,
                                                                  "milestones": [4, 8]},
                                                     "optim": {"lr": 0.3}})
    exp = write(tmp_path / "exp.yaml", {"inherit": ["base/data.yaml", "base/sched.yaml"], "name": "exp",
                                        "head": {"name": "arcface", "params": {"m": 0.45}},
                                        "data": {"synthetic_classes": 10}})
    return {"base": base, "sched": sched, "exp": exp}


def test_inherit_merges_left_to_right_then_the_file(tree):
    cfg = load_config(tree["exp"])
    assert cfg.name == "exp"
    assert cfg.data.batch_size == 64 and cfg.data.synthetic_classes == 10  # mappings merge key by key
    assert cfg.optim.lr == 0.3  # the later parent wins
    assert cfg.optim.weight_decay == 1e-4
    assert cfg.schedule.milestones == (4.0, 8.0)
    assert cfg.head.params == {"m": 0.45}
    assert isinstance(cfg, ExperimentCfg) and dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]


def test_cli_and_python_overrides_give_the_same_config_and_hash(tree):
    a = load_config(tree["exp"], ["head.params.m=0.5", "optim.lr=1", "schedule.milestones=[2, 3]"])
    b = load_config(tree["exp"], {"head.params.m": 0.5, "optim.lr": 1.0, "schedule.milestones": (2, 3)})
    assert a == b
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(load_config(tree["exp"]))
    assert a.optim.lr == 1.0 and isinstance(a.optim.lr, float)


def test_integer_head_parameter_is_normalised_to_the_default_type(tree):
    # m has a float default: m=1 from the command line and m=1.0 from Python are the same experiment
    a = load_config(tree["exp"], ["head.params.s=64"])
    b = load_config(tree["exp"], {"head.params.s": 64.0})
    assert config_hash(a) == config_hash(b)


def test_unknown_key_names_the_key_and_the_file(tree, tmp_path):
    bad = write(tmp_path / "bad.yaml", {"inherit": [str(tree["exp"])], "optim": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError,
                       match=r"section 'optim' got unknown key\(s\) \['learning_rate'\] \(set in .*bad\.yaml\)"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['datta'\] \(set in .*base[/\\]data\.yaml, "
                                         r"did you mean 'data'\?\); known keys: name, paper"):
        write(tree["base"], {"datta": {"batch_size": 1}})
        load_config(tree["exp"])


def test_unknown_override_key_names_the_override(tree):
    with pytest.raises(ConfigError, match=r"'schedule' got unknown key\(s\) \['epoch'\] "
                                         r"\(set in override 'schedule\.epoch=3', did you mean 'epochs'\?\)"):
        load_config(tree["exp"], ["schedule.epoch=3"])


def test_bad_values_are_errors_naming_key_and_source(tree):
    with pytest.raises(ConfigError, match=r"data\.batch_size = 'many'.*override"):
        load_config(tree["exp"], {"data.batch_size": "many"})
    with pytest.raises(ConfigError, match=r"head\.params: head 'arcface' got unknown parameter\(s\) \['q'\] "
                                         r"\(set in override 'head\.params\.q'\)"):
        load_config(tree["exp"], {"head.params.q": 1})
    with pytest.raises(ConfigError, match=r"head\.name.*unknown head 'arcfase'"):
        load_config(tree["exp"], ["head.name=arcfase"])
    with pytest.raises(ConfigError, match=r"schedule\.kind.*'cosine' is not one of"):
        load_config(tree["exp"], ["schedule.kind=cosine"])
    with pytest.raises(ConfigError, match=r"data\.augment\.p_flip"):
        load_config(tree["exp"], ["data.augment.p_flip=2"])


def test_unknown_head_parameter_in_file_names_the_file(tmp_path):
    bad = write(tmp_path / "h.yaml", {"head": {"name": "cosface", "params": {"margin": 0.3}}})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['margin'\] \(set in .*h\.yaml\); "
                                         r"known parameters: m, s"):
        load_config(bad)


def test_inheritance_cycle_and_missing_parent_are_reported(tmp_path):
    write(tmp_path / "a.yaml", {"inherit": ["b.yaml"]})
    write(tmp_path / "b.yaml", {"inherit": ["a.yaml"]})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", {"inherit": ["nope.yaml"]})
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("no_equals_sign")


def test_dump_and_reload_roundtrip_keeps_the_hash(tree, tmp_path):
    cfg = load_config(tree["exp"], ["optim.clip_grad_norm=5", "eval.sets=[lfw, cfp_fp]"])
    p = tmp_path / "resolved.yaml"
    p.write_text(dump_yaml(cfg))
    again = load_config(p)
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert from_dict(yaml.safe_load(p.read_text())) == cfg
    assert again.eval.sets == ("lfw", "cfp_fp")


def test_fields_that_do_not_change_results_are_not_hashed(tree):
    cfg = load_config(tree["exp"])
    same = load_config(tree["exp"], ["runtime.progress=true", "runtime.log_every=10", "data.num_workers=2",
                                     "runtime.ckpt_every_steps=5", "description=hello"])
    assert config_hash(same) == config_hash(cfg)
    assert config_hash(load_config(tree["exp"], ["runtime.seed=1"])) != config_hash(cfg)
    assert "progress" not in to_dict(cfg, hashed_only=True)["runtime"]


def test_derive_does_not_touch_the_config(tree):
    cfg = load_config(tree["exp"], ["schedule.warmup_epochs=1", "optim.lr_reference_batch=32"])
    before = to_dict(cfg)
    d = derive(cfg, world_size=2, num_images=1000)
    assert to_dict(cfg) == before
    assert (d.global_batch, d.local_batch, d.steps_per_epoch) == (64, 32, 15)
    assert d.total_steps == 150 and d.warmup_steps == 15 and d.milestone_steps == (60, 120)
    assert d.lr == pytest.approx(0.3 * 64 / 32) and d.lr_scale == 2.0
    # the global batch makes the schedule independent of the world size
    assert derive(cfg, 1, 1000).total_steps == d.total_steps
    with pytest.raises(ConfigError, match="not divisible"):
        derive(cfg, world_size=3, num_images=1000)
    with pytest.raises(ConfigError, match="larger than the training set"):
        derive(cfg, 1, num_images=10)
    assert num_train_images(cfg) == 10 * 8


def test_builders_check_the_choices_declared_in_the_config():
    from fr.engine.optim import EXEMPT, build_optimizer, param_groups

    assert sorted(EXEMPT) == sorted(CHOICES["optim.no_decay"])  # every declared rule is implemented
    for kind in CHOICES["schedule.kind"]:
        assert LRFactor(kind, total_steps=10)(0) >= 0.0
    with pytest.raises(ConfigError, match=r"schedule\.kind: 'cosine' is not one of multistep, poly$"):
        LRFactor("cosine", total_steps=10)
    net = torch.nn.Linear(2, 2)
    head = create_head("cosface", num_classes=3, embedding_size=2)
    with pytest.raises(ConfigError, match=r"optim\.no_decay: 'all' is not one of norm_bias_prelu, bn, none$"):
        param_groups(net, head, OptimCfg(no_decay="all"))
    with pytest.raises(ConfigError, match=r"optim\.name: 'adamw' is not one of sgd$"):
        build_optimizer(net, head, OptimCfg(name="adamw"), lr=0.1)


def test_unknown_names_share_one_message():
    with pytest.raises(ValueError, match=r"^section got unknown key\(s\) \['bacth', 'zzz'\] \('bacth': set in "
                                         r"a\.yaml, did you mean 'batch'\?; 'zzz': set in a\.yaml\); "
                                         r"known keys: batch, epochs$"):
        check_known({"bacth": 1, "zzz": 2, "epochs": 3}, ["batch", "epochs"], owner="section", noun="key",
                    error=ValueError, source=lambda k: "a.yaml")
    check_known({"batch": 1}, ["batch", "epochs"], owner="section")  # known names pass
    with pytest.raises(TypeError, match=r"^f got unknown parameter\(s\) \['x'\]; known parameters: \(none\)$"):
        check_known(["x"], [], owner="f")


def test_lr_factors_follow_the_papers_schedules():
    ms = LRFactor("multistep", total_steps=100, milestones=(10, 20), gamma=0.1)
    assert [ms(s) for s in (0, 9, 10, 19, 20, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    poly = LRFactor("poly", total_steps=110, warmup_steps=10, power=1.0)  # insightface PolynomialLRWarmup
    assert poly(0) == 0.0 and poly(5) == pytest.approx(0.5) and poly(10) == pytest.approx(1.0)
    assert poly(60) == pytest.approx(0.5) and poly(110) == pytest.approx(0.0)
    warm_ms = LRFactor("multistep", total_steps=100, warmup_steps=4, milestones=(50,))
    assert warm_ms(2) == pytest.approx(0.5) and warm_ms(50) == pytest.approx(0.1)


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.rglob("*.yaml") if p.name != "base.yaml"),
                         ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_configs_load_and_name_real_backbones(path):
    from fr.backbones import BACKBONES

    cfg = load_config(path)
    BACKBONES.check_params(cfg.backbone.name, cfg.backbone.params)
    assert cfg.name == path.stem
    if cfg.data.train == "synthetic":
        d = derive(cfg, 1)
        assert d.total_steps >= 1
    else:  # derive with a stand-in image count: milestones must fall inside the run
        d = derive(cfg, 1, num_images=100 * cfg.data.batch_size)
        assert all(0 < m < d.total_steps for m in d.milestone_steps)
    if path.parent.name == "paper":
        assert cfg.paper and cfg.data.num_classes and cfg.backbone.params.get("input_size") == 112
        assert config_hash(cfg) == config_hash(load_config(path, {}))


def test_paper_schedules_match_the_papers():
    ada = load_config(CONFIGS / "paper" / "casia_r50_adaface.yaml")
    assert (ada.schedule.milestones, ada.schedule.epochs, ada.data.batch_size) == ((12, 20, 24), 26, 512)
    assert ada.optim.no_decay == "bn" and ada.data.augment.p_crop == 0.2
    arc = load_config(CONFIGS / "paper" / "ms1mv2_r100_arcface.yaml")
    assert (arc.schedule.kind, arc.optim.clip_grad_norm, arc.optim.no_decay) == ("poly", 5.0, "none")
    rec = load_config(CONFIGS / "paper" / "casia_r18_recurricularface.yaml")
    assert (rec.schedule.milestones, rec.schedule.epochs) == ((20, 28, 32), 34)
    sma = load_config(CONFIGS / "paper" / "webface4m_r100_smaface.yaml")
    assert (sma.schedule.milestones, sma.schedule.epochs, sma.head.params["h"]) == ((12, 20, 24), 30, 0.33)


def test_mapping_override_replaces_while_dotted_override_reaches_inside():
    from fr.config import load_config

    path = "configs/cpu/celeba_small.yaml"
    switched = load_config(path, {"head.name": "softmax", "head.params": {"s": 30.0}})
    assert switched.head.name == "softmax" and switched.head.params == {"s": 30.0}
    same_cli = load_config(path, ["head.name=softmax", "head.params={s: 30.0}"])
    assert same_cli == switched
    inside = load_config(path, ["head.params.m=0.5"])
    assert inside.head.params == {"s": 30.0, "m": 0.5}


def test_eval_pair_subsets_must_keep_folds_balanced():
    import pytest

    from fr.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="eval.pairs.*multiple of 10"):
        load_config("configs/cpu/celeba_small.yaml", {"eval.pairs": 605})


def test_zero_steps_is_an_evaluation_of_the_initialisation_and_negative_steps_are_refused():
    import pytest

    from fr.config import ConfigError, load_config

    assert load_config("configs/cpu/smoke.yaml", {"schedule.steps": 0}).schedule.steps == 0
    with pytest.raises(ConfigError, match="schedule.steps"):
        load_config("configs/cpu/smoke.yaml", {"schedule.steps": -1})


# --- every shipped config --------------------------------------------------------------------------------

SHIPPED = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml") if p.name != "base.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_config_resolves_to_registered_parts_and_a_schedule(path):
    import fr
    from fr.backbones import list_backbones
    from fr.heads import create_rule
    from fr.config import derive

    cfg = load_config(path)
    assert cfg.head.name in fr.list_heads()
    create_rule(cfg.head.name, **cfg.head.params)          # the head's parameters are all known
    assert cfg.backbone.name in list_backbones()
    # a plausible training-set size (the paper sets are not shipped) gives a positive schedule
    world = 8 if cfg.data.batch_size % 8 == 0 else 1
    d = derive(cfg, world_size=world, num_images=max(cfg.data.batch_size * 10, 100 * (cfg.data.num_classes or 1)))
    assert d.total_steps > 0 and d.lr > 0


def test_fields_added_later_enter_the_hash_only_when_set():
    """``optim.ema_decay`` did not exist when the first runs were recorded: at its default it must leave the
    hash (and so the run folder) of every older config unchanged, and set it must change the hash."""
    from fr.config import config_hash, load_config, to_dict

    base = load_config("configs/cpu/celeba_small.yaml")
    assert "ema_decay" not in to_dict(base, hashed_only=True)["optim"]
    assert "ema_decay" in to_dict(base)["optim"]  # still written to config.yaml
    ema = load_config("configs/cpu/celeba_small.yaml", {"optim.ema_decay": 0.999})
    assert config_hash(ema) != config_hash(base)
    with pytest.raises(Exception, match="ema_decay"):
        load_config("configs/cpu/celeba_small.yaml", {"optim.ema_decay": 1.5})


def test_eval_suite_names_known_protocols():
    cfg = load_config("configs/cpu/celeba_v2.yaml")
    assert cfg.eval.suite == ("all",) and cfg.eval.sets == ()
    with pytest.raises(ConfigError, match=r"eval.suite.*'lfw_allpair'.*did you mean 'lfw_allpairs'"):
        load_config("configs/cpu/celeba_v2.yaml", {"eval.suite": ["lfw", "lfw_allpair"]})


def test_label_noise_enters_the_hash_only_when_set_and_is_a_fraction_below_one():
    """``data.label_noise`` came after the first recorded runs: at 0 every older config keeps its hash."""
    base = load_config("configs/cpu/celeba_v2.yaml")
    assert base.data.label_noise == 0.0
    assert "label_noise" not in to_dict(base, hashed_only=True)["data"]
    assert config_hash(load_config("configs/cpu/celeba_v2.yaml", {"data.label_noise": 0.0})) == config_hash(base)
    noisy = load_config("configs/cpu/celeba_v2.yaml", {"data.label_noise": 0.2})
    assert config_hash(noisy) != config_hash(base)
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match=r"data.label_noise: must be a fraction in \[0, 1\).*got"):
            load_config("configs/cpu/celeba_v2.yaml", {"data.label_noise": bad})


def test_a_config_file_is_parsed_once_per_text_and_an_edit_is_seen_at_once(tmp_path):
    from fr.config import _parse_yaml, _read_yaml

    f = tmp_path / "c.yaml"
    f.write_text("name: a\ndata: {batch_size: 8}\n")
    first = _read_yaml(f)
    first["data"]["batch_size"] = 99  # a caller changing its copy changes nobody else's
    assert _read_yaml(f) == {"name": "a", "data": {"batch_size": 8}}
    hits = _parse_yaml.cache_info().hits
    _read_yaml(f)
    assert _parse_yaml.cache_info().hits == hits + 1  # the same text is not parsed again
    f.write_text("name: b\ndata: {batch_size: 8}\n")  # same size, maybe the same modification time
    assert _read_yaml(f)["name"] == "b"
    assert load_config(f).name == "b"
