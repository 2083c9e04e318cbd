"""Backbones: insightface/AdaFace checkpoint compatibility, the (emb, norm) contract, and the registry.

The expected state_dict layouts below are written out from the structure of the reference code
(insightface ``arcface_torch/backbones/iresnet.py``, AdaFace ``net.py``), not taken from our modules,
so a renamed or reordered attribute, a missing BatchNorm or a wrong shape fails here.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from fr.backbones import (InputSpec, count_macs, create_backbone, backbone_info, list_backbones,
                          load_official)

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, c: int) -> list[tuple[str, tuple]]:
    return [(f"{prefix}.{k}", () if k == "num_batches_tracked" else (c,)) for k in BN]


def insightface_keys(layers, widths=(64, 128, 256, 512), emb=512, feat=(7, 7)) -> "OrderedDict[str, tuple]":
    """insightface IResNet state_dict keys and shapes, in registration order."""
    cin = widths[0]  # insightface: the stem has as many channels as layer1 (64)
    out: list[tuple[str, tuple]] = [("conv1.weight", (cin, 3, 3, 3)), *_bn("bn1", cin), ("prelu.weight", (cin,))]
    for s, (n, c) in enumerate(zip(layers, widths, strict=True), start=1):
        for j in range(n):
            p = f"layer{s}.{j}"
            a = cin if j == 0 else c
            out += [*_bn(f"{p}.bn1", a), (f"{p}.conv1.weight", (c, a, 3, 3)), *_bn(f"{p}.bn2", c),
                    (f"{p}.prelu.weight", (c,)), (f"{p}.conv2.weight", (c, c, 3, 3)), *_bn(f"{p}.bn3", c)]
            if j == 0:  # every stage starts with stride 2, hence a downsample
                out += [(f"{p}.downsample.0.weight", (c, a, 1, 1)), *_bn(f"{p}.downsample.1", c)]
        cin = c
    out += [*_bn("bn2", cin), ("fc.weight", (emb, cin * feat[0] * feat[1])), ("fc.bias", (emb,)),
            *_bn("features", emb)]
    return OrderedDict(out)


def adaface_keys(layers, emb=512) -> "OrderedDict[str, tuple]":
    """AdaFace IR (net.py Backbone) state_dict keys and shapes, in registration order."""
    out: list[tuple[str, tuple]] = [("input_layer.0.weight", (64, 3, 3, 3)), *_bn("input_layer.1", 64),
                                    ("input_layer.2.weight", (64,))]
    cin, i = 64, 0
    for n, c in zip(layers, (64, 128, 256, 512), strict=True):
        for j in range(n):
            a, p = (cin if j == 0 else c), f"body.{i}"
            if a != c:
                out += [(f"{p}.shortcut_layer.0.weight", (c, a, 1, 1)), *_bn(f"{p}.shortcut_layer.1", c)]
            out += [*_bn(f"{p}.res_layer.0", a), (f"{p}.res_layer.1.weight", (c, a, 3, 3)),
                    *_bn(f"{p}.res_layer.2", c), (f"{p}.res_layer.3.weight", (c,)),
                    (f"{p}.res_layer.4.weight", (c, c, 3, 3)), *_bn(f"{p}.res_layer.5", c)]
            i += 1
        cin = c
    out += [*_bn("output_layer.0", 512), ("output_layer.3.weight", (emb, 512 * 49)), ("output_layer.3.bias", (emb,)),
            ("output_layer.4.running_mean", (emb,)), ("output_layer.4.running_var", (emb,)),
            ("output_layer.4.num_batches_tracked", ())]
    return OrderedDict(out)


def random_state(keys: "OrderedDict[str, tuple]", seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(1234)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        elif k == "features.weight":
            state[k] = torch.ones(shape)
        else:
            state[k] = torch.randn(shape, generator=g) * 0.05
    return state


def shapes(model) -> "OrderedDict[str, tuple]":
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items())


# --- checkpoint compatibility -----------------------------------------------------------------------

def test_iresnet50_matches_insightface_keys_and_loads_strictly(tmp_path):
    expected = insightface_keys((3, 4, 14, 3))
    model = create_backbone("iresnet50")
    assert list(shapes(model).items()) == list(expected.items())
    assert len([k for k in expected if k.endswith("num_batches_tracked")]) == 1 + 24 * 3 + 4 + 1 + 1

    state = random_state(expected)
    model.load_state_dict(state, strict=True)
    # the same file as insightface writes it, wrapped by DDP, through load_official
    torch.save(OrderedDict(("module." + k, v) for k, v in state.items()), tmp_path / "backbone.pth")
    loaded, spec = load_official(tmp_path / "backbone.pth", "iresnet50")
    assert spec == InputSpec(size=(112, 112), color="RGB", mean=(0.5,) * 3, std=(0.5,) * 3)
    assert not loaded.training
    got = loaded.state_dict()
    for k in ("conv1.weight", "layer3.13.conv2.weight", "layer4.0.downsample.1.running_var", "fc.bias",
              "features.running_mean", "layer2.0.bn1.num_batches_tracked"):
        assert torch.equal(got[k], state[k]), k


def test_iresnet100_keys_and_shapes():
    assert list(shapes(create_backbone("iresnet100")).items()) == list(insightface_keys((3, 13, 30, 3)).items())


def test_ir50_adaface_keys_and_lightning_checkpoint():
    expected = adaface_keys((3, 4, 14, 3))
    model = create_backbone("ir50_adaface")
    assert list(shapes(model).items()) == list(expected.items())
    state = random_state(expected, seed=1)
    ckpt = {"state_dict": {**{"model." + k: v for k, v in state.items()}, "head.kernel": torch.randn(512, 10)}}
    loaded, spec = load_official(ckpt, "ir50_adaface", source="adaface")
    assert spec.color == "BGR"
    assert torch.equal(loaded.state_dict()["body.23.res_layer.4.weight"], state["body.23.res_layer.4.weight"])


def test_load_official_errors_name_the_problem():
    state = random_state(insightface_keys((2, 2, 2, 2)))
    with pytest.raises(KeyError, match=r"missing keys.*fits iresnet18"):
        load_official(state, "iresnet34")
    bad = dict(state, **{"fc.weight": torch.zeros(512, 100)})
    with pytest.raises(KeyError, match=r"shape mismatches \[fc.weight: checkpoint \(512, 100\)"):
        load_official(bad, "iresnet18")
    with pytest.raises(KeyError, match=r"unexpected keys \[extra.weight\]"):
        load_official(dict(state, **{"extra.weight": torch.zeros(1)}), "iresnet18")
    with pytest.raises(ValueError, match="does not load 'adaface'"):
        load_official(state, "iresnet18", source="adaface")
    with pytest.raises(ValueError, match="unknown checkpoint source"):
        load_official(state, "iresnet18", source="facexzoo")
    # the embedding size is read from the checkpoint; missing num_batches_tracked is tolerated
    small = random_state(insightface_keys((2, 2, 2, 2), emb=128))
    small = {k: v for k, v in small.items() if not k.endswith("num_batches_tracked")}
    model, _ = load_official({"backbone." + k: v for k, v in small.items()}, "iresnet18")
    assert model.embedding_size == 128


def _ref_bn(x, s, p):
    return F.batch_norm(x, s[p + ".running_mean"], s[p + ".running_var"], s.get(p + ".weight"), s.get(p + ".bias"),
                        training=False, eps=1e-5)


def insightface_forward(s, x, layers):
    """IResNet's eval forward written with functional ops from the reference code's operation order."""
    x = F.prelu(_ref_bn(F.conv2d(x, s["conv1.weight"], padding=1), s, "bn1"), s["prelu.weight"])
    for st, n in enumerate(layers, start=1):
        for j in range(n):
            p = f"layer{st}.{j}"
            out = F.conv2d(_ref_bn(x, s, p + ".bn1"), s[p + ".conv1.weight"], padding=1)
            out = F.prelu(_ref_bn(out, s, p + ".bn2"), s[p + ".prelu.weight"])
            out = _ref_bn(F.conv2d(out, s[p + ".conv2.weight"], stride=2 if j == 0 else 1, padding=1), s, p + ".bn3")
            if j == 0:
                x = _ref_bn(F.conv2d(x, s[p + ".downsample.0.weight"], stride=2), s, p + ".downsample.1")
            x = out + x
    x = torch.flatten(_ref_bn(x, s, "bn2"), 1)
    return _ref_bn(F.linear(x, s["fc.weight"], s["fc.bias"]), s, "features")


def test_iresnet_forward_matches_reference_operation_order():
    layers, widths = (1, 2, 1, 1), (8, 16, 16, 32)
    model = create_backbone("iresnet", layers=layers, widths=widths, input_size=32, embedding_size=24)
    keys = insightface_keys(layers, widths, emb=24, feat=(2, 2))
    state = random_state(keys, seed=3)
    state["features.bias"] = torch.randn(24)
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    emb, norm = model(x)
    ref = insightface_forward(state, x, layers)
    torch.testing.assert_close(emb, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm, ref.norm(dim=1))


# --- the (emb, norm) contract -----------------------------------------------------------------------

HEAVY = {"iresnet100", "iresnet200", "ir101_adaface"}  # key/shape checks only (too slow to run here)


@pytest.mark.parametrize("name", [n for n in list_backbones() if n not in HEAVY and n != "iresnet"])
def test_output_shapes_and_norms(name):
    torch.manual_seed(0)
    model = create_backbone(name).eval()
    h, w = model.input_spec.size
    x = torch.randn(1, 3, h, w)  # one image keeps the 50-layer nets cheap; eval-mode BN allows it
    with torch.no_grad():
        emb, norm = model(x)
    assert emb.shape == (1, model.embedding_size) == (1, 512)
    assert norm.shape == (1,)
    assert torch.isfinite(emb).all()
    torch.testing.assert_close(norm, emb.norm(dim=1))
    assert model.input_spec.color == backbone_info(name)["spec"].color
    assert model.arch == name


def test_input_size_sets_fc_and_spec():
    cases = {56: (4, 4), 64: (4, 4), 112: (7, 7), 96: (6, 6), (112, 96): (7, 6)}
    for size, (fh, fw) in cases.items():
        m = create_backbone("iresnet18", input_size=size)
        assert m.fc.in_features == 512 * fh * fw, size
        assert m.input_spec.size == ((size, size) if isinstance(size, int) else size)
    m = create_backbone("iresnet_tiny", input_size=(40, 32)).eval()
    emb, _ = m(torch.randn(1, 3, 40, 32))
    assert emb.shape == (1, 512)
    with pytest.raises(ValueError, match=r"expects a float batch of shape \(B, 3, 40, 32\).*got \(1, 3, 64, 64\)"):
        m(torch.randn(1, 3, 64, 64))
    with pytest.raises(TypeError, match="to_input"):
        m(torch.zeros(1, 3, 40, 32, dtype=torch.uint8))


def test_width_multiplier_and_custom_widths():
    m = create_backbone("iresnet18", width=0.5, input_size=32)
    assert m.widths == (32, 64, 128, 256) and m.conv1.out_channels == 32
    assert m.fc.in_features == 256 * 2 * 2
    small = create_backbone("iresnet_small")
    assert small.widths == (32, 64, 128, 256) and small.layers == (2, 2, 2, 2)
    assert create_backbone("iresnet_tiny").layers == (1, 1, 1, 1)


def test_features_bn_weight_is_frozen_at_one():
    model = create_backbone("iresnet_tiny", input_size=32)
    assert not model.features.weight.requires_grad
    assert torch.equal(model.features.weight, torch.ones(512))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
        emb, norm = model(torch.randn(4, 3, 32, 32))
        (emb.pow(2).sum() + norm.sum()).backward()
        opt.step()
        opt.zero_grad()
    assert model.features.weight.grad is None
    assert torch.equal(model.features.weight, torch.ones(512))
    assert model.features.bias.abs().sum() > 0  # the bias does train
    assert model.features.bias.requires_grad


def test_eval_mode_is_deterministic_and_train_mode_updates_bn():
    torch.manual_seed(0)
    model = create_backbone("iresnet_small", input_size=32, dropout=0.2)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        a, na = model(x)
        b, nb = model(x)
        c, _ = model(x[:2])
    assert torch.equal(a, b) and torch.equal(na, nb)
    # no batch dependence in eval (up to float32 summation order; activations are large at init)
    torch.testing.assert_close(c, a[:2], rtol=1e-4, atol=1e-5 * float(a.abs().max()))
    before = model.bn2.running_mean.clone()
    model.train()
    model(x)
    assert not torch.equal(before, model.bn2.running_mean)


@pytest.mark.parametrize("name", ["iresnet_tiny", "ir18_adaface"])
def test_channels_last_equivalence(name):
    torch.manual_seed(0)
    kw = {"input_size": 32}
    ref = create_backbone(name, **kw)
    cl = create_backbone(name, **kw)
    cl.load_state_dict(ref.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32)
    for mode in ("eval", "train"):
        getattr(ref, mode)()
        getattr(cl, mode)()
        if mode == "train" and name == "ir18_adaface":
            ref.output_layer[1].p = cl.output_layer[1].p = 0.0  # dropout would draw different masks
        e1, n1 = ref(x)
        e2, n2 = cl(x.contiguous(memory_format=torch.channels_last))
        # conv weights ~ N(0, 0.1) give large activations at init; the two layouts run different float32 conv
        # kernels (summation orders differ by CPU: AVX2 and AVX-512 builds), a layout bug moves outputs by O(scale)
        scale = float(e1.detach().abs().max())
        torch.testing.assert_close(e2, e1, rtol=1e-4, atol=1e-4 * scale)
        torch.testing.assert_close(n2, n1, rtol=1e-4, atol=1e-4 * scale)
    (e1.sum() + n1.sum()).backward()
    (e2.sum() + n2.sum()).backward()
    w1 = dict(ref.named_parameters())
    for k, p in cl.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, w1[k].grad, rtol=1e-3, atol=1e-4, msg=k)


# --- registry and helpers ---------------------------------------------------------------------------

def test_registry_errors():
    with pytest.raises(KeyError, match="unknown backbone 'resnet50'.*iresnet50"):
        create_backbone("resnet50")
    with pytest.raises(TypeError, match=r"backbone 'iresnet50' got unknown parameter\(s\) \['layers'\]; known"):
        create_backbone("iresnet50", layers=(1, 1, 1, 1))
    with pytest.raises(TypeError, match=r"\['layer'\] \(did you mean 'layers'\?\); known parameters: .*layers"):
        create_backbone("iresnet", layer=(1, 1, 1, 1))
    with pytest.raises(TypeError, match=r"needs parameter\(s\) \['layers'\]"):
        create_backbone("iresnet")
    with pytest.raises(ValueError, match="4 stages"):
        create_backbone("iresnet", layers=(1, 1, 1))
    with pytest.raises(ValueError, match="input size"):
        create_backbone("iresnet18", input_size=0)
    assert {"iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet_small", "iresnet_tiny",
            "ir50_adaface"} <= set(list_backbones())
    assert list_backbones("ir*_adaface") == ["ir101_adaface", "ir18_adaface", "ir34_adaface", "ir50_adaface"]


def test_input_spec_validation():
    assert InputSpec(size=64).size == (64, 64)
    assert InputSpec().with_size(56).size == (56, 56)
    with pytest.raises(ValueError, match="RGB"):
        InputSpec(color="rgb")
    with pytest.raises(ValueError, match="std"):
        InputSpec(std=(0.5, 0.0, 0.5))


def test_count_macs_iresnet50_analytic():
    """Hand count for IResNet-50 at 112 px: 6.31 G multiply-adds (insightface's flops.py: "6.3G")."""
    macs = 64 * 112 * 112 * 3 * 9          # stem
    cin, hw = 64, 112
    for n, c in zip((3, 4, 14, 3), (64, 128, 256, 512), strict=True):
        out = math.ceil(hw / 2)
        macs += c * hw * hw * cin * 9 + c * out * out * c * 9 + c * out * out * cin   # block 0 + downsample
        macs += (n - 1) * 2 * (c * out * out * c * 9)
        cin, hw = c, out
    macs += 512 * 7 * 7 * 512
    assert count_macs(create_backbone("iresnet50")) == macs
    assert 6.30e9 < macs < 6.32e9


# --- benchmarks/bench_train.py ----------------------------------------------------------------------

def _bench():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
    spec = importlib.util.spec_from_file_location("bench_train", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_peak_table_and_defaults():
    b = _bench()
    assert b.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert b.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert b.peak_tflops("NVIDIA GH200 480GB", None) == 989.0
    assert b.peak_tflops("Some GPU", None) is None
    assert b.peak_tflops("Some GPU", 123.0) == 123.0
    args = b.parse([])
    assert args.configs == ["iresnet18", "recipe"] and args.variants == list(b.CPU_VARIANTS)
    assert args.out.name == "train_cpu.csv"  # train.csv is the AVX-512 machine's record, kept as it is
    recipe = b.cpu_configs(["recipe"], None)[0]  # read from configs/cpu/celeba_v2.yaml
    assert (recipe["backbone"], recipe["params"]["input_size"], recipe["batch"], recipe["classes"]) == \
        ("iresnet_small", 56, 128, 238)
    with pytest.raises(SystemExit):
        b.parse(["--variants", "eager,turbo"])
    args = b.parse(["--gpu"])
    assert (args.backbone, args.batch) == ("iresnet50", 512) and args.out.name == "train_gpu.csv"


@pytest.mark.slow
def test_bench_train_quick_runs(tmp_path):
    import csv
    b = _bench()
    out = tmp_path / "train.csv"
    assert b.main(["--quick", "--backbone", "iresnet_tiny", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["variant"] for r in rows] == ["reference", "eager", "eager_nchw", "bf16"]
    assert [r["precision"] for r in rows] == ["fp32", "fp32", "fp32", "bf16-autocast"]
    assert [r["channels_last"] for r in rows] == ["False", "True", "False", "True"]
    assert all(r["losses_agree"] == "True" for r in rows)
    assert float(rows[0]["ratio"]) == 1.0 and float(rows[1]["img_per_s"]) > 0
    assert all(float(r["first_step_s"]) > 0 and 0 < float(r["share_of_peak"]) < 1 for r in rows)
