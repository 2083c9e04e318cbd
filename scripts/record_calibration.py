"""Record an independent pretrained model's numbers on this project's data, once, as a run-like record.

dlib's face ResNet (:class:`fr.eval.calibration.DlibFaceResNet`) is evaluated through
:func:`fr.eval.evaluate_suite` (the same code path as the trained models) and filed under
``results/runs/calibration_dlib-<hash>/``:

    calibration.yaml  what was evaluated: model files (sha256), alignment, flip, protocols, data fingerprints;
                      its sha256 names the folder (``<hash>`` = first 8 hex), as a config hash names a run
    env.json          interpreter, libraries, git SHA (``fr.envinfo.collect_env``)
    metrics.json      written last. ``metrics`` holds the ``.bin`` results in the layout of a training run's
                      (``VerificationResult.to_dict()`` plus ``pairs`` and ``bin_sha256``), ``suite`` every
                      result of the suite (``SuiteResult.to_dict()``)

The record is not a training run (no ``config.yaml``): ``fr.results.load_runs`` leaves it out of the training
tables and ``fr.results.load_run`` reads it. An existing complete record is not recomputed (``--force`` does).

    python scripts/record_calibration.py                                  # lfw, cfp_fp, cfp_ff (insightface)
    python scripts/record_calibration.py --protocols all                  # every suite protocol (hours on CPU)
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fr.engine.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from fr.envinfo import collect_env  # noqa: E402
from fr.paths import data_root, results_root  # noqa: E402
from fr.results import load_run, runs_root  # noqa: E402

BIN_PROTOCOLS = ("lfw", "cfp_fp", "cfp_ff")


def calibration_settings(model, protocols, flip: str, data: dict) -> dict:
    return {"kind": "calibration", "name": "calibration_dlib", "model": model.describe(), "flip": flip,
            "protocols": list(protocols), "data": data}


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(yaml.safe_dump(settings, sort_keys=True).encode()).hexdigest()


def main(argv=None) -> int:
    from fr.eval.calibration import DLIB_ALIGNMENTS, DlibFaceResNet
    from fr.eval.suite import DEFAULT_PROTOCOLS, evaluate_suite, prepare_suite

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocols", default=",".join(BIN_PROTOCOLS),
                    help=f"comma-separated suite protocols, or 'all' ({', '.join(DEFAULT_PROTOCOLS)})")
    ap.add_argument("--alignment", default="landmarks", choices=DLIB_ALIGNMENTS)
    ap.add_argument("--flip", default="none", choices=("none", "sum"),
                    help="dlib's own pipeline describes the image alone (default); 'sum' fuses the mirror as "
                         "the training runs' evaluation does, at twice the cost (about 0.12 CPU-s a chip)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data", type=Path, default=None, help="data root (default FR_DATA)")
    ap.add_argument("--results", type=Path, default=None, help="results root (default FR_RESULTS or results/)")
    ap.add_argument("--force", action="store_true", help="recompute an existing complete record")
    args = ap.parse_args(argv)
    protocols = DEFAULT_PROTOCOLS if args.protocols == "all" else tuple(p for p in args.protocols.split(",") if p)

    model = DlibFaceResNet(args.alignment)
    root = args.data or data_root()
    env = collect_env("cpu")          # at the start: the code version that computes the numbers
    t0 = time.perf_counter()
    data = prepare_suite(root, protocols, size=model.input_spec.size, progress=True)
    fingerprints = {"identification": data.fingerprints["identification"], "bins": data.fingerprints["bins"]}
    settings = calibration_settings(model, protocols, args.flip, fingerprints)
    digest = settings_hash(settings)
    run_dir = runs_root(args.results or results_root()) / f"calibration_dlib-{digest[:8]}"
    if (run_dir / "metrics.json").exists() and not args.force and load_run(run_dir).complete:
        print(f"{run_dir} is already recorded; --force to recompute")
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "calibration.yaml", yaml.safe_dump(settings, sort_keys=True))
    res = evaluate_suite(model, data=data, protocols=protocols, flip=args.flip, batch_size=args.batch_size,
                         progress=True)
    seconds = time.perf_counter() - t0
    metrics = {
        "schema": 1, "status": "complete", "kind": "calibration", "run_id": run_dir.name, "name": settings["name"],
        "paper": "calibration", "config_hash": digest,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": seconds, "eval_time_s": seconds,
        "metrics": {n: {**res[n].to_dict(), "pairs": res[n].n_pairs, "bin_sha256": res[n].sha256}
                    for n in protocols if n in BIN_PROTOCOLS},
        "suite": res.to_dict(),
        "model": {"path": None, **model.describe()},
    }
    atomic_write_json(run_dir / "env.json", env)
    atomic_write_json(run_dir / "metrics.json", metrics)   # last: marks the record complete
    print(res.summary())
    print(f"recorded {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
