"""Evaluate a recorded run again: the protocols its ``metrics.json`` lacks, from its exported model.

A protocol added to :mod:`fr.eval.suite` after a run was recorded (``lfw_lq``, say) can be measured on that run
without training it again: its final model (``ckpt/model.pt``, written by :func:`fr.train.run`, git-ignored,
so present only where the run was trained) is evaluated on the missing protocols with the run's own evaluation
settings (``eval.flip``, ``eval.batch_size``, ``eval.protocol``, and the memory format the trainer evaluated
in: ``runtime.channels_last``), and the results are merged into ``metrics.json`` atomically.

    python -m fr.evaluate results/runs/celeba_v2-9cf0c29e                       # every missing protocol
    python -m fr.evaluate results/runs/celeba_v2-9cf0c29e --protocols lfw_lq     # only these, if missing
    python -m fr.evaluate results/runs/celeba_v2-9cf0c29e --protocols lfw --force   # measure lfw again

What is kept: ``config.yaml`` is not touched (the config hash, hence the run id, stays), nor is any recorded
metric unless ``--force`` names it, nor the training figures (``eval_time_s`` remains the trainer's final
evaluation). Each added result carries ``"added": {"by", "code", "utc", "device", "torch", "replaced"}``: the
code version (:func:`fr.envinfo.code_version`) and time that measured it, and whether it replaced a recorded
value. The checkpoint must be the one the record names (its sha256), and of the record's architecture.

Exactness: embeddings do not depend on the batch an image is embedded in nor on the thread count (checked on
this CPU), but they do depend on the memory format (channels-last and contiguous convolutions round
differently), hence the run's ``runtime.channels_last``. Re-evaluating ``celeba_v2-9cf0c29e`` this way gives all
nine of its recorded records byte for byte (per-pair correctness, thresholds, mean norms, TARs, ROCs, CMCs).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .config import config_hash
from .data._util import sha256_file
from .engine.atomic import atomic_write_json
from .envinfo import code_version
from .results import RunRecord, load_run

log = logging.getLogger("fr.evaluate")


class EvaluateError(RuntimeError):
    """A recorded run cannot be evaluated again as asked (no checkpoint, another architecture, ...)."""


@dataclass
class Reevaluation:
    """What :func:`reevaluate` did: the protocols measured (``evaluated``), those already recorded and skipped
    (``skipped``), the results as recorded (``records``) and the seconds the evaluation took."""

    run_dir: Path
    evaluated: tuple[str, ...]
    skipped: tuple[str, ...]
    records: dict[str, dict[str, Any]]
    seconds: float
    written: bool


def _record(run_dir: Path) -> RunRecord:
    rec = load_run(run_dir)
    if rec.config is None or not rec.complete or rec.metrics is None or isinstance(rec.metrics, dict):
        raise EvaluateError(f"{run_dir} is not a complete training record (config.yaml and metrics.json of "
                            f"fr.train); status {rec.status!r}")
    if config_hash(rec.config) != rec.metrics.config_hash:
        raise EvaluateError(f"{run_dir}: config.yaml hashes to {config_hash(rec.config)[:8]}, metrics.json was "
                            f"written by {rec.metrics.config_hash[:8]}; refusing to add results to a mismatched record")
    return rec


def load_run_model(run_dir: str | Path, *, check_sha256: bool = True) -> torch.nn.Module:
    """The final model of the run at ``run_dir`` (``ckpt/model.pt``), in eval mode, in the memory format the
    trainer evaluated it in. Raises :class:`EvaluateError` naming the problem: no checkpoint, a checkpoint that
    is not the recorded one, or one of another architecture than the run's config."""
    from .engine.build import build_backbone

    run_dir = Path(run_dir)
    rec = _record(run_dir)
    path = run_dir / rec.metrics.model["path"]
    if not path.is_file():
        raise EvaluateError(f"{run_dir.name}: no checkpoint at {path} (ckpt/ is git-ignored: only a machine that "
                            "trained the run has it; train it again with python -m fr.train to recreate it)")
    if check_sha256 and sha256_file(path) != rec.metrics.model["sha256"]:
        raise EvaluateError(f"{path}: sha256 differs from the one metrics.json records "
                            f"({rec.metrics.model['sha256'][:16]}…); it is not the model these metrics measured")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    b = rec.config.backbone
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise EvaluateError(f"{path}: not an exported model (expected a dict with 'arch', 'params', 'state_dict')")
    if ckpt.get("arch") != b.name or dict(ckpt.get("params") or {}) != dict(b.params):
        raise EvaluateError(f"{path}: architecture {ckpt.get('arch')!r} {ckpt.get('params')} but the run's config "
                            f"has {b.name!r} {dict(b.params)}")
    model = build_backbone(b.name, b.params)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise EvaluateError(f"{path}: its weights do not fit {b.name!r} {dict(b.params)}: {e}") from None
    fmt = torch.channels_last if rec.config.runtime.channels_last else torch.contiguous_format
    return model.to(memory_format=fmt).eval()


def plan_protocols(recorded: Iterable[str], protocols: Sequence[str] | None, force: bool) -> tuple[tuple[str, ...],
                                                                                                  tuple[str, ...]]:
    """``(to evaluate, skipped as recorded)`` for the requested ``protocols`` (None: every suite protocol)."""
    from .eval.suite import SUITE_PROTOCOLS

    wanted = tuple(SUITE_PROTOCOLS) if protocols is None else tuple(dict.fromkeys(protocols))
    unknown = [p for p in wanted if p not in SUITE_PROTOCOLS]
    if unknown or not wanted:
        raise EvaluateError(f"unknown protocols {unknown}; known: {', '.join(SUITE_PROTOCOLS)}")
    recorded = set(recorded)
    todo = tuple(p for p in wanted if force or p not in recorded)
    return todo, tuple(p for p in wanted if p not in todo)


def reevaluate(run_dir: str | Path, protocols: Sequence[str] | None = None, *, force: bool = False,
               write: bool = True, data_root=None, batch_size: int | None = None, progress: bool = False,
               **suite_kwargs) -> Reevaluation:
    """Evaluate ``protocols`` (default: every suite protocol) that the run at ``run_dir`` has not recorded (all
    of them with ``force``) and merge them into its ``metrics.json`` (unless ``write=False``). See the module
    docstring for what is kept. ``suite_kwargs`` go to :func:`fr.eval.evaluate_suite` (e.g. opt-in speed
    switches); ``batch_size`` defaults to the run's ``eval.batch_size``."""
    from .eval.suite import evaluate_suite
    from .train import _result_record

    run_dir = Path(run_dir)
    rec = _record(run_dir)
    todo, skipped = plan_protocols(rec.metrics.metrics, protocols, force)
    if not todo:
        return Reevaluation(run_dir, (), skipped, {}, 0.0, False)
    metrics_path = run_dir / "metrics.json"
    before = metrics_path.read_bytes()
    model = load_run_model(run_dir)
    ev = rec.config.eval
    t0 = time.perf_counter()
    res = evaluate_suite(model, data_root=data_root, protocols=todo, device=torch.device("cpu"),
                         batch_size=batch_size or ev.batch_size, flip=ev.flip, verification_protocol=ev.protocol,
                         progress=progress, **suite_kwargs)
    seconds = time.perf_counter() - t0
    stamp = {"by": "fr.evaluate", "code": code_version(),
             "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": "cpu",
             "torch": torch.__version__, **({"options": suite_kwargs} if suite_kwargs else {})}
    records = {p: {**_result_record(res[p]), "added": {**stamp, "replaced": p in rec.metrics.metrics}}
               for p in todo}
    if write:
        if metrics_path.read_bytes() != before:
            raise EvaluateError(f"{metrics_path} changed while the run was being evaluated; run again")
        doc = json.loads(before)      # the file as read, not RunMetrics: every other byte of meaning is kept
        doc["metrics"].update(records)
        atomic_write_json(metrics_path, doc)
    return Reevaluation(run_dir, todo, skipped, records, seconds, write)


def _parser() -> argparse.ArgumentParser:
    from .eval.suite import SUITE_PROTOCOLS

    p = argparse.ArgumentParser(prog="python -m fr.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a recorded run, e.g. results/runs/celeba_v2-9cf0c29e")
    p.add_argument("--protocols", nargs="+", default=None, metavar="NAME",
                   help=f"suite protocols (default: all): {', '.join(SUITE_PROTOCOLS)}")
    p.add_argument("--force", action="store_true", help="evaluate and replace protocols already recorded")
    p.add_argument("--dry-run", action="store_true", help="evaluate and print, but do not write metrics.json")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's eval.batch_size")
    p.add_argument("--data", type=Path, default=None, help="data root (default FR_DATA)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        out = reevaluate(args.run_dir, args.protocols, force=args.force, write=not args.dry_run,
                         data_root=args.data, batch_size=args.batch_size, progress=args.progress)
    except (EvaluateError, FileNotFoundError) as e:
        print(f"fr.evaluate: {e}", file=sys.stderr)
        return 2
    if out.skipped:
        print(f"already recorded (use --force to measure again): {', '.join(out.skipped)}")
    if not out.evaluated:
        print("nothing to evaluate")
        return 0
    from .results import headline

    for name, r in out.records.items():
        label, value = headline(r)
        print(f"{name}: {label + ' ' if label else ''}{100 * value:.2f}% [{r['protocol']}]")
    print(f"{'wrote' if out.written else 'not written (dry run)'}: {args.run_dir / 'metrics.json'} "
          f"({out.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
