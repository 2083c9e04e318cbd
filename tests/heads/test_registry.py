"""The head registry (fr/heads/registry.py) and the factories of fr.heads: lookups, errors that name the problem."""
from __future__ import annotations

import pkgutil

import pytest

import fr
import fr.heads
from fr.heads import create_rule, registry
from fr.heads.base import MarginRule


def test_registry_errors_list_known_names_and_parameters():
    with pytest.raises(KeyError, match="known heads: .*arcface"):
        fr.create_head("arcfcae", num_classes=10)
    with pytest.raises(TypeError, match="known parameters: .*grad_mode"):
        fr.create_head("arcface", num_classes=10, margin=0.5)
    with pytest.raises(ValueError, match="grad_mode"):
        fr.create_head("arcface", num_classes=10, grad_mode="sloppy")


@pytest.mark.parametrize("name, kwargs, match", [
    ("recurricularface", dict(coef_mode="eq6"), "coef_mode"),
    ("recurricularface", dict(mask_mode="loose"), "mask_mode"),
    ("recurricularface", dict(E=200.0), "degrees"),
    ("adasin", dict(difficulty="cosine"), "difficulty"),
    ("adasin", dict(pos_mode="mul"), "pos_mode"),
    ("mv_am", dict(mode="soft"), "mode"),
    ("sphereface_r", dict(grad_mode="sloppy"), "grad_mode"),
    ("combined", dict(interclass_filtering_threshold=1.5), "interclass_filtering_threshold"),
    ("curricularface", dict(ema_weight=2.0), "ema_weight"),
])
def test_bad_options_fail_naming_the_parameter(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_rule(name, **kwargs)


def test_every_head_module_is_imported_and_registers_heads():
    """fr.heads imports its head modules by name: a head file left out of that list would register nothing."""
    infrastructure = {"base", "classifier", "registry"}
    modules = {m.name for m in pkgutil.iter_modules(fr.heads.__path__)} - infrastructure
    registering = {registry.HEADS.get(n).factory.__module__.rsplit(".", 1)[-1] for n in registry.list_heads()}
    assert registering == modules, (f"not imported by fr/heads/__init__.py (or registering nothing): "
                                    f"{sorted(modules - registering)}")


def test_public_api_is_the_registry_module():
    assert fr.heads.HEADS is registry.HEADS and fr.heads.register_head is registry.register_head
    assert fr.list_heads() == fr.heads.list_heads() == registry.HEADS.names()
    assert fr.list_heads("elastic_*") == ["elastic_arc", "elastic_arc_plus", "elastic_cos", "elastic_cos_plus"]
    assert fr.head_info("arcface") == fr.heads.head_info("arcface") == registry.head_info("arcface")
    assert fr.heads.head_defaults("smaface_star")["alpha"] == 2.0  # the name's override of the class default
    assert type(fr.create_head("arcface", num_classes=3, embedding_size=4).rule).__name__ == "ArcFace"


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_head("arcface", paper="p", equation="e", tex="t")(type("Again", (MarginRule,), {}))
