"""Experiment configuration: typed, frozen dataclasses loaded from YAML.

One :class:`ExperimentCfg` drives ``python -m fr.train``, ``torchrun -m fr.train`` and the notebooks, so
the command line and Python can never diverge::

    cfg = load_config("configs/cpu/celeba_small.yaml", {"head.params.m": 0.45})
    cfg = load_config("configs/cpu/celeba_small.yaml", ["head.params.m=0.45"])   # same config, same hash

YAML files may start with ``inherit: [a.yaml, b.yaml]`` (paths relative to the file, or to ``configs/``);
parents are merged left to right, then the file itself, then the overrides. Mappings merge key by key,
everything else (lists included) is replaced. A key that is not a field is an error that names the key and
the file (or override) it came from. ``head.params`` and ``backbone.params`` are free mappings checked
against the head registry (paper defaults) and the backbone factory.

Values that follow from the config and the run (steps per epoch, total and warm-up steps, the learning rate
scaled to the global batch) come from :func:`derive`, which returns a separate :class:`Derived` and never
writes into the config: the config file and its hash describe *what was asked*, not how it was laid out.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .paths import repo_root
from .registry import check_known

#: fields marked ``metadata={"hash": False}`` do not change what a run computes (logging cadence, progress
#: bars, loader workers); they are left out of :func:`config_hash`.
NOHASH = {"hash": False}
#: fields added after runs were recorded: they enter :func:`config_hash` only when set to something other
#: than their default, so every record made before the field existed keeps its hash (and its run folder).
HASH_UNLESS_DEFAULT = {"hash": "unless_default"}


@dataclass(frozen=True)
class AugmentCfg:
    """Training augmentation probabilities, passed to ``fr.data.transforms.TrainAugment``.

    Defaults are insightface's (horizontal flip only). AdaFace trains with ``p_lowres = p_crop = p_photo = 0.2``
    (AdaFace, CVPR 2022, Sec. 4.1; official ``data.py``). ``p_gray`` converts to grayscale (not AdaFace's;
    LFW's ``.bin`` is a grayscale copy while CelebA is in colour).
    """

    p_flip: float = 0.5
    p_lowres: float = 0.0
    p_crop: float = 0.0
    p_photo: float = 0.0
    p_gray: float = field(default=0.0, metadata=HASH_UNLESS_DEFAULT)

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.p_flip, self.p_lowres, self.p_crop, self.p_photo, self.p_gray))


@dataclass(frozen=True)
class DataCfg:
    """Training data.

    train:       ``"synthetic"``, or a RecordIO set: a folder under the data root holding ``train.rec``
                 (``celeba_train``), a ``.rec`` path relative to the data root, or an absolute path.
    size:        square side in pixels the images are resized to; ``None`` = the backbone's input size.
    batch_size:  the GLOBAL batch (all ranks together), as the papers state it; each of ``W`` ranks gets
                 ``batch_size / W``. A config therefore means the same optimisation on any number of ranks.
    num_classes: optional check: the training set must have exactly this many classes.
    synthetic_*: size of the synthetic set (``fr.data.synthetic_faces``), used when ``train == "synthetic"``.
    label_noise: fraction in [0, 1) of the training labels replaced by a different class
                 (``fr.data.add_label_noise``), the same images for every head trained with the same
                 ``runtime.seed`` (the noisy-label setting SFace is designed for); 0 leaves the labels as they are.
    """

    train: str = "synthetic"
    size: int | None = None
    batch_size: int = 128
    num_classes: int | None = None
    synthetic_classes: int = 16
    synthetic_per_class: int = 8
    augment: AugmentCfg = field(default_factory=AugmentCfg)
    label_noise: float = field(default=0.0, metadata=HASH_UNLESS_DEFAULT)
    num_workers: int = field(default=0, metadata=NOHASH)


@dataclass(frozen=True)
class BackboneCfg:
    """``fr.backbones.create_backbone(name, **params)``. A ``module:attribute`` name builds a backbone from
    any importable factory (for experiments and tests); it must follow the same contract."""

    name: str = "iresnet50"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HeadCfg:
    """``fr.create_head(name, num_classes=..., embedding_size=..., sample_rate=..., init=..., **params)``.

    ``params`` override the registered paper defaults; unknown parameters are rejected at load time.
    ``sample_rate < 1`` gives Partial FC negative sampling; ``init=None`` uses the head's official init."""

    name: str = "arcface"
    params: dict[str, Any] = field(default_factory=dict)
    sample_rate: float = 1.0
    init: str | None = None


@dataclass(frozen=True)
class OptimCfg:
    """SGD with momentum, as in every paper reproduced here.

    no_decay:  which parameters get no weight decay. ``"norm_bias_prelu"`` (default): normalisation layers,
               biases and PReLU slopes are exempt, the head's class centres are decayed (AdaFace's grouping,
               ``train_val.py``, extended to biases/PReLU); ``"bn"``: only BatchNorm parameters are exempt
               (AdaFace's code exactly); ``"none"``: everything is decayed (insightface ``train_v2.py``).
    head_weight_decay: weight decay of the class centres (``None`` = ``weight_decay``).
    lr_reference_batch: when set, ``lr`` is for this global batch and is scaled linearly to the actual one
               (ElasticFace: ``lr / 512 * batch * world``); see :func:`derive`.
    clip_grad_norm: clip the backbone's gradient norm to this value (insightface: 5; ``None``: no clipping).
    ema_decay: keep an exponential moving average of the backbone's weights (and buffers) with this decay,
               warmed up as timm's ``ModelEmaV3`` does (``min(decay, (1 + t) / (10 + t))`` at step ``t``), and
               evaluate the average instead of the raw weights (``None``: off). It changes no head's loss.
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay: str = "norm_bias_prelu"
    head_weight_decay: float | None = None
    lr_reference_batch: int | None = None
    clip_grad_norm: float | None = None
    ema_decay: float | None = field(default=None, metadata=HASH_UNLESS_DEFAULT)


@dataclass(frozen=True)
class ScheduleCfg:
    """Learning-rate schedule, stepped every iteration.

    kind ``"multistep"``: ``lr * gamma^k`` after the k-th milestone (given in epochs, converted to steps),
    as ArcFace (MXNet), CurricularFace, AdaFace, ReCurricularFace use. kind ``"poly"``: insightface's
    ``PolynomialLRWarmup``: linear warm-up from 0 over ``warmup_epochs``, then ``(1 - progress)^power``.
    ``steps`` (when set) fixes the total number of steps regardless of ``epochs`` (smoke runs); milestones
    are still converted with the real steps per epoch.
    """

    kind: str = "multistep"
    epochs: float = 20.0
    steps: int | None = None
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    power: float = 1.0


@dataclass(frozen=True)
class EvalCfg:
    """Verification on insightface ``.bin`` sets (``verification/<name>.bin`` under the data root).

    every_steps: periodic evaluation during training (0: only at the end), on the first ``pairs`` pairs
                 (whole folds; ``None`` = all). The final evaluation uses ``final_pairs`` (``None`` = all)
                 and is what ``metrics.json`` records.
    suite:       protocols of :mod:`fr.eval.suite` (``lfw``, ``cfp_fp``, ``lfw_allpairs``, ``lfw_ident_lq``, ...;
                 ``[all]`` for every one) for the final evaluation, all read off one embedding pass over the
                 identification folders. When set, the final evaluation is the suite and ``sets`` serves the
                 periodic evaluation only.
    """

    sets: tuple[str, ...] = ()
    every_steps: int = 0
    pairs: int | None = 600
    final_pairs: int | None = None
    protocol: str = "insightface"
    flip: str = "sum"
    batch_size: int = 256
    suite: tuple[str, ...] = field(default=(), metadata=HASH_UNLESS_DEFAULT)


@dataclass(frozen=True)
class RuntimeCfg:
    """How the run executes.

    device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    amp:    ``"none"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast + GradScaler, insightface's
            ``growth_interval=100``); ignored on the CPU except ``"bf16"``.
    threads: ``torch.set_num_threads`` (``None``: leave as is).
    ckpt_every_steps: checkpoint cadence (0: only when stopping and at the end).
    compile: ``torch.compile`` the backbone (mode ``default``). Off by default: it pays only when the steps
            it saves outweigh the compilation. On the CPU recipe (246 steps of 128 images at 56 px, 2 AVX2
            cores), at a load average near 2, compilation took 65 s (empty inductor cache) and a step went
            from 1.68 s to 1.37 s in the least loaded round: about 76 s saved over the run against 65 s
            spent, a wash; at a load average near 12 compilation took 580 s and the compiled step was no
            faster (``results/bench/train_cpu*.csv``, ``benchmarks/bench_train.py``). Compiled steps also
            round differently from the eager steps the recorded runs took. On a GPU, IResNet-50 ran 1.39x
            faster compiled (``results/bench/train_gpu_compile.csv``): long runs there should turn it on.
    """

    seed: int = 0
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    threads: int | None = field(default=None, metadata=NOHASH)
    log_every: int = field(default=1, metadata=NOHASH)
    ckpt_every_steps: int = field(default=0, metadata=NOHASH)
    progress: bool | None = field(default=None, metadata=NOHASH)


@dataclass(frozen=True)
class ExperimentCfg:
    """A whole experiment. ``name`` (with the config hash) names the run folder; ``paper`` groups runs."""

    name: str = "experiment"
    paper: str = ""
    description: str = field(default="", metadata=NOHASH)
    data: DataCfg = field(default_factory=DataCfg)
    backbone: BackboneCfg = field(default_factory=BackboneCfg)
    head: HeadCfg = field(default_factory=HeadCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    runtime: RuntimeCfg = field(default_factory=RuntimeCfg)


#: The allowed values of every enumerated field, declared once: :func:`validate` checks configs against them and
#: the builders (``fr.engine.optim``, ``fr.engine.schedule``) check their arguments with :func:`check_choice`.
CHOICES = {
    "optim.name": ("sgd",),
    "optim.no_decay": ("norm_bias_prelu", "bn", "none"),
    "schedule.kind": ("multistep", "poly"),
    "runtime.device": ("auto", "cpu", "cuda"),
    "runtime.amp": ("none", "bf16", "fp16"),
    "eval.protocol": ("insightface", "cosine"),
    "eval.flip": ("sum", "none", "norm_weighted"),
}


class ConfigError(ValueError):
    """A bad configuration; the message names the key and the file or override it came from."""


def check_choice(key: str, value: Any, where: str | None = None) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``CHOICES[key]``; ``where`` names its source."""
    choices = CHOICES[key]
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}"
                          + (f" (set in {where})" if where else ""))


# --- loading --------------------------------------------------------------------------------------------

def configs_root() -> Path:
    return repo_root() / "configs"


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in config file ``path``: read every time, parsed once per distinct text (planning a grid loads
    the same recipe files hundreds of times; reading is cheap, parsing is not) and handed out as a fresh copy."""
    return copy.deepcopy(_parse_yaml(str(path), path.read_text()))


@functools.lru_cache(maxsize=256)
def _parse_yaml(path: str, text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping, got {type(data).__name__}")
    return data


def _resolve_path(ref: str, base: Path | None) -> Path:
    p = Path(ref).expanduser()
    cands = [p] if p.is_absolute() else ([base / p] if base else []) + [configs_root() / p, repo_root() / p, p]
    for c in cands:
        if c.is_file():
            return c.resolve()
    raise ConfigError(f"config file {ref!r} not found (looked in: {', '.join(str(c) for c in cands)})")


def _merge(dst: dict, src: Mapping, origin: dict[str, str], source: str, prefix: str = "") -> None:
    """Deep-merge ``src`` into ``dst``; record in ``origin`` which source set each dotted key."""
    for k, v in src.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and isinstance(dst.get(k), dict):
            _merge(dst[k], v, origin, source, key + ".")
        else:
            dst[k] = copy.deepcopy(dict(v)) if isinstance(v, Mapping) else copy.deepcopy(v)
            _mark(v, origin, source, key)


def _assign(dst: dict, sub: Mapping, origin: dict[str, str], source: str, prefix: str = "") -> None:
    """Apply one override tree (a single dotted path): walk to its leaf and REPLACE the value there.

    Unlike ``inherit:`` files, which deep-merge, an override whose value is a mapping replaces the mapping
    it names: ``head.params={s: 30}`` leaves exactly ``s`` (so switching ``head.name`` can drop parameters
    the new head does not take), while ``head.params.m=0.5`` reaches inside and changes ``m`` only."""
    (k, v), = sub.items()
    key = f"{prefix}{k}"
    if isinstance(v, _PathNode):
        if not isinstance(dst.get(k), dict):
            dst[k] = {}
        _assign(dst[k], v, origin, source, key + ".")
        return
    for old in [o for o in origin if o.startswith(key + ".")]:
        del origin[old]
    dst[k] = copy.deepcopy(dict(v)) if isinstance(v, Mapping) else copy.deepcopy(v)
    _mark(v, origin, source, key)


class _PathNode(dict):
    """An intermediate node of a dotted override path (as opposed to a mapping given as a value)."""


def _mark(v: Any, origin: dict[str, str], source: str, key: str) -> None:
    origin[key] = source
    if isinstance(v, Mapping):
        for k2, v2 in v.items():
            _mark(v2, origin, source, f"{key}.{k2}")


def _load_tree(path: Path, origin: dict[str, str], stack: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in stack:
        raise ConfigError(f"inheritance cycle: {' -> '.join(str(p) for p in (*stack, path))}")
    raw = _read_yaml(path)
    parents = raw.pop("inherit", []) or []
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError(f"{path}: 'inherit' must be a list of file paths, got {parents!r}")
    tree: dict[str, Any] = {}
    for ref in parents:
        parent = _load_tree(_resolve_path(ref, path.parent), origin, (*stack, path))  # marks the parent's keys
        _merge(tree, parent, {}, "")
    _merge(tree, raw, origin, str(path))
    return tree


def parse_override(item: str) -> tuple[str, Any]:
    """``"head.params.m=0.45"`` -> ``("head.params.m", 0.45)`` (the value is read as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has no key")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {e}") from None
    return key, value


def _overrides_to_tree(overrides: Mapping[str, Any] | Sequence[str] | None, origin: dict[str, str]) -> list[
        tuple[dict, str]]:
    if not overrides:
        return []
    items: list[tuple[str, Any, str]] = []
    if isinstance(overrides, Mapping):
        for k, v in overrides.items():
            items.append((str(k), v, f"override {k!r}"))
    else:
        for s in overrides:
            if not isinstance(s, str):
                raise ConfigError(f"overrides must be 'key=value' strings or a mapping, got {s!r}")
            k, v = parse_override(s)
            items.append((k, v, f"override {s!r}"))
    out = []
    for key, value, source in items:
        tree: dict[str, Any] = _PathNode()
        node = tree
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigError(f"{source}: malformed key {key!r}")
        for p in parts[:-1]:
            node = node.setdefault(p, _PathNode())
        node[parts[-1]] = value
        out.append((tree, source))
    return out


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | Sequence[str] | None = None) -> ExperimentCfg:
    """Load ``path`` (YAML, with ``inherit:``), apply dotted ``overrides`` (a mapping such as
    ``{"head.params.m": 0.45}`` or strings ``["head.params.m=0.45"]``), check and return the config.

    ``path=None`` starts from the dataclass defaults."""
    origin: dict[str, str] = {}
    tree: dict[str, Any] = {}
    if path is not None:
        tree = _load_tree(_resolve_path(str(path), None), origin)
    for sub, source in _overrides_to_tree(overrides, origin):
        _assign(tree, sub, origin, source)
    cfg = _build(ExperimentCfg, tree, origin, "")
    return validate(cfg, origin)


def from_dict(tree: Mapping[str, Any], source: str = "<dict>") -> ExperimentCfg:
    """Build a config from a nested mapping (e.g. a run's ``config.yaml`` read back)."""
    origin: dict[str, str] = {}
    t: dict[str, Any] = {}
    _merge(t, tree, origin, source)
    return validate(_build(ExperimentCfg, t, origin, ""), origin)


def _where(origin: Mapping[str, str], key: str) -> str:
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        k = ".".join(parts[:i])
        if k in origin:
            return origin[k]
    return "<defaults>"


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, tree: Mapping[str, Any], origin: Mapping[str, str], prefix: str):
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_known(tree, fields, owner=f"config section {prefix[:-1]!r}" if prefix else "config", noun="key",
                error=ConfigError, source=lambda k: _where(origin, f"{prefix}{k}"))
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}", origin) for k, v in tree.items()}
    return cls(**kwargs)


def _coerce(tp: Any, v: Any, key: str, origin: Mapping[str, str]) -> Any:
    def bad(expected: str):
        return ConfigError(f"{key} = {v!r} in {_where(origin, key)}: expected {expected}")

    origin_t = typing.get_origin(tp)
    if origin_t in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if v is None:
            if type(None) in args:
                return None
            raise bad(" or ".join(getattr(a, "__name__", str(a)) for a in args))
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, v, key, origin)
            except ConfigError:
                continue
        raise bad(" or ".join(getattr(a, "__name__", str(a)) for a in args))
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, Mapping):
            raise bad(f"a mapping of {tp.__name__} fields")
        return _build(tp, v, origin, key + ".")
    if origin_t is dict or tp is dict:
        if not isinstance(v, Mapping):
            raise bad("a mapping")
        return {str(k): copy.deepcopy(x) for k, x in v.items()}
    if origin_t is tuple:
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
            if v is None:
                raise bad("a list")
            v = [v]
        (elem, *_rest) = typing.get_args(tp)
        return tuple(_coerce(elem, x, key, origin) for x in v)
    if tp is bool:
        if isinstance(v, bool):
            return v
        raise bad("true or false")
    if tp is int:
        if isinstance(v, bool):
            raise bad("an integer")
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise bad("an integer")
    if tp is float:
        if isinstance(v, bool):
            raise bad("a number")
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):  # YAML 1.1 reads "5e-4" as a string
            try:
                return float(v)
            except ValueError:
                pass
        raise bad("a number")
    if tp is str:
        if isinstance(v, str):
            return v
        raise bad("a string")
    return v


def validate(cfg: ExperimentCfg, origin: Mapping[str, str] | None = None) -> ExperimentCfg:
    """Check choices and ranges; normalise head parameters to the types of their defaults."""
    origin = origin or {}

    def err(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{key}: {msg} (set in {_where(origin, key)})")

    for key in CHOICES:
        sec, name = key.split(".")
        check_choice(key, getattr(getattr(cfg, sec), name), _where(origin, key))
    d, o, s, e, h = cfg.data, cfg.optim, cfg.schedule, cfg.eval, cfg.head
    for key, val in [("data.batch_size", d.batch_size), ("data.synthetic_classes", d.synthetic_classes),
                     ("data.synthetic_per_class", d.synthetic_per_class), ("eval.batch_size", e.batch_size),
                     ("runtime.log_every", cfg.runtime.log_every)]:
        if val < 1:
            raise err(key, f"must be >= 1, got {val}")
    if s.steps is not None and s.steps < 0:
        raise err("schedule.steps", f"must be >= 0 (0 evaluates the initialisation) or null, got {s.steps}")
    for key, val in [("data.size", d.size), ("data.num_classes", d.num_classes),
                     ("optim.lr_reference_batch", o.lr_reference_batch), ("eval.pairs", e.pairs),
                     ("eval.final_pairs", e.final_pairs)]:
        if val is not None and val < 1:
            raise err(key, f"must be >= 1 or null, got {val}")
    for key, val in [("eval.pairs", e.pairs), ("eval.final_pairs", e.final_pairs)]:
        if val is not None and val % 10:
            raise err(key, f"must be a multiple of 10 (a subset keeps the 10 verification folds balanced), got {val}")
    if s.epochs <= 0 and s.steps is None:
        raise err("schedule.epochs", f"must be > 0, got {s.epochs}")
    if list(s.milestones) != sorted(s.milestones):
        raise err("schedule.milestones", f"must be increasing, got {list(s.milestones)}")
    if s.warmup_epochs < 0 or not 0 < s.gamma <= 1:
        raise err("schedule", "warmup_epochs must be >= 0 and gamma in (0, 1]")
    if o.lr <= 0 or o.momentum < 0 or o.weight_decay < 0:
        raise err("optim", "lr must be > 0, momentum and weight_decay >= 0")
    if o.ema_decay is not None and not 0 < o.ema_decay < 1:
        raise err("optim.ema_decay", f"must be in (0, 1) or null, got {o.ema_decay}")
    if o.clip_grad_norm is not None and o.clip_grad_norm <= 0:
        raise err("optim.clip_grad_norm", f"must be > 0 or null, got {o.clip_grad_norm}")
    if not 0 < h.sample_rate <= 1:
        raise err("head.sample_rate", f"must be in (0, 1], got {h.sample_rate}")
    for p in ("p_flip", "p_lowres", "p_crop", "p_photo", "p_gray"):
        if not 0 <= getattr(d.augment, p) <= 1:
            raise err(f"data.augment.{p}", "must be a probability in [0, 1]")
    if not 0 <= d.label_noise < 1:
        raise err("data.label_noise", f"must be a fraction in [0, 1) of the training labels, got {d.label_noise}")
    if e.suite:  # the protocols of the final evaluation suite
        from .eval.suite import SUITE_PROTOCOLS

        check_known([n for n in e.suite if n != "all"], sorted(SUITE_PROTOCOLS), owner="eval.suite",
                    noun="protocol", error=lambda msg: ConfigError(f"eval.suite: {msg}"),
                    source=lambda k: _where(origin, "eval.suite"))
    # head: the name must be registered and every parameter known; numbers take the default's type
    from .heads import HEADS, head_defaults

    if h.name not in HEADS:
        raise err("head.name", f"unknown head {h.name!r}; known heads: {', '.join(HEADS.names())}")
    defaults = head_defaults(h.name)
    check_known(h.params, sorted(defaults), owner=f"head {h.name!r}",
                error=lambda msg: ConfigError(f"head.params: {msg}"),
                source=lambda k: _where(origin, f"head.params.{k}"))
    params = {}
    for k, v in h.params.items():
        dv = defaults[k]
        if isinstance(dv, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        params[k] = v
    return dataclasses.replace(cfg, head=dataclasses.replace(h, params=dict(sorted(params.items()))),
                               backbone=dataclasses.replace(cfg.backbone,
                                                            params=dict(sorted(cfg.backbone.params.items()))))


# --- serialisation and hashing --------------------------------------------------------------------------

def to_dict(cfg: Any, *, hashed_only: bool = False) -> dict[str, Any]:
    """Plain nested dict (tuples as lists), in field order. ``hashed_only`` drops the fields that do not
    change what a run computes (see :data:`NOHASH`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        rule = f.metadata.get("hash", True)
        if hashed_only and (rule is False or (rule == "unless_default" and v == _default_of(f))):
            continue
        if dataclasses.is_dataclass(v):
            v = to_dict(v, hashed_only=hashed_only)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, dict):
            v = copy.deepcopy(v)
        out[f.name] = v
    return out


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def dump_yaml(cfg: ExperimentCfg) -> str:
    """The resolved config as YAML; :func:`load_config` on it gives back an equal config (same hash)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)


def config_hash(cfg: ExperimentCfg) -> str:
    """SHA-256 (hex) of the canonical JSON of the resolved config, without the fields that do not change
    results. Runs are named with its first 8 characters."""
    canon = json.dumps(to_dict(cfg, hashed_only=True), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canon.encode()).hexdigest()


# --- derived values -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Derived:
    """Values computed from a config and the run's layout (never written back into the config)."""

    world_size: int
    global_batch: int
    local_batch: int
    num_images: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    milestone_steps: tuple[int, ...]
    lr: float
    lr_scale: float

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestone_steps"] = list(self.milestone_steps)
        return d


def num_train_images(cfg: ExperimentCfg) -> int | None:
    """Known without reading data only for the synthetic set."""
    if cfg.data.train == "synthetic":
        return cfg.data.synthetic_classes * cfg.data.synthetic_per_class
    return None


def derive(cfg: ExperimentCfg, world_size: int = 1, num_images: int | None = None) -> Derived:
    """Steps, warm-up, milestones and learning rate for ``cfg`` run on ``world_size`` ranks.

    Every epoch drops its last partial batch (as insightface/AdaFace loaders do), so
    ``steps_per_epoch = num_images // batch_size``. The learning rate is ``optim.lr``, times
    ``batch_size / optim.lr_reference_batch`` when the latter is set.
    """
    d, s, o = cfg.data, cfg.schedule, cfg.optim
    if num_images is None:
        num_images = num_train_images(cfg)
        if num_images is None:
            raise ConfigError(f"derive() needs num_images for training set {d.train!r}")
    if world_size < 1:
        raise ConfigError(f"world_size must be >= 1, got {world_size}")
    if d.batch_size % world_size:
        raise ConfigError(f"data.batch_size={d.batch_size} (global) is not divisible by the world size {world_size}")
    spe = num_images // d.batch_size
    if spe < 1:
        raise ConfigError(f"data.batch_size={d.batch_size} is larger than the training set ({num_images} images)")
    total = s.steps if s.steps is not None else max(1, int(math.floor(s.epochs * spe)))
    warm = int(round(s.warmup_epochs * spe))
    if s.kind == "poly" and warm >= total:
        raise ConfigError(f"schedule.warmup_epochs={s.warmup_epochs} gives {warm} warm-up steps, "
                          f"not fewer than the {total} total steps")
    milestones = tuple(int(round(m * spe)) for m in s.milestones)
    scale = d.batch_size / o.lr_reference_batch if o.lr_reference_batch else 1.0
    return Derived(world_size=world_size, global_batch=d.batch_size, local_batch=d.batch_size // world_size,
                   num_images=num_images, steps_per_epoch=spe, total_steps=total, warmup_steps=warm,
                   milestone_steps=milestones, lr=o.lr * scale, lr_scale=scale)


__all__ = ["AugmentCfg", "DataCfg", "BackboneCfg", "HeadCfg", "OptimCfg", "ScheduleCfg", "EvalCfg", "RuntimeCfg",
           "ExperimentCfg", "Derived", "ConfigError", "CHOICES", "check_choice", "load_config", "from_dict",
           "parse_override", "validate", "to_dict", "dump_yaml", "config_hash", "derive", "num_train_images",
           "configs_root"]
