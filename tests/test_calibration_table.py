"""The calibration table: the pretrained dlib model's record beside the CPU recipe's methods (fr.book.calibration_table)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_readme_results import COS, fabricate

from fr.book import CALIBRATION_COLUMNS, CALIBRATION_LABEL, calibration_record, calibration_table
from fr.results import runs_root

ROOT = Path(__file__).resolve().parents[1]
ARC = {"head.name": "arcface", "head.params": {"s": 30.0, "m": 0.5}}
COMMAND = "python scripts/record_calibration.py --protocols all"


def _verification(acc: float) -> dict:
    return {"accuracy": acc, "spread": 0.0, "protocol": "fabricated", "sha256": "x", "n_pairs": 10}


def calibration(root: Path, digest: str, created: str, results: dict[str, dict]) -> Path:
    """A complete calibration record in the layout of scripts/record_calibration.py: ``metrics`` holds the ``.bin``
    results, ``suite.protocols`` every result."""
    d = runs_root(root) / f"calibration_dlib-{digest}"
    d.mkdir(parents=True)
    (d / "calibration.yaml").write_text("kind: calibration\nname: calibration_dlib\n")
    bins = {k: v for k, v in results.items() if k in ("lfw", "cfp_fp", "cfp_ff")}
    metrics = {"schema": 1, "status": "complete", "kind": "calibration", "run_id": d.name, "name": "calibration_dlib",
               "paper": "calibration", "config_hash": digest, "created_utc": created, "wall_time_s": 1.0,
               "eval_time_s": 1.0, "metrics": bins,
               "suite": {"schema": 1, "protocols": results, "embedding": {"flip": "none"}},
               "model": {"path": None, "model": "dlib_face_recognition_resnet_model_v1", "alignment": "landmarks"}}
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def _rows(df) -> dict[str, dict]:
    return {r["Method"]: r for r in df.to_dict("records")}


def test_cells_are_the_records_dlib_as_one_model_and_a_missing_protocol_as_a_dash(tmp_path):
    root = tmp_path / "results"
    lfw, ff, tar = [0.81, 0.83], [0.70, 0.74], [0.12, 0.15]
    for seed in range(2):
        fabricate(root, COS, seed, lfw=lfw[seed], cfp_ff=ff[seed], tar=tar[seed], rank1=0.1)
    dlib = {"lfw": _verification(0.9857), "cfp_fp": _verification(0.8573),
            "lfw_allpairs": {"tar_at_far": {"1e-04": 0.7012, "1e-06": None}},
            "cfp_ident_pose": {"cmc": {"1": 0.4321, "5": 0.6}}}
    calibration(root, "aaaaaaaa", "2026-01-02T00:00:00+00:00", dlib)
    df = calibration_table(root)
    assert list(df.columns) == ["Method", "n", *CALIBRATION_COLUMNS]
    assert list(df["Method"]) == [CALIBRATION_LABEL, "CosFace (s=30, m=0.35)"]
    rows = _rows(df)
    d = rows[CALIBRATION_LABEL]
    assert d["n"] == 1
    assert d["LFW"] == f"{100 * dlib['lfw']['accuracy']:.2f}" and d["CFP-FP"] == "85.73"
    assert d["TAR@FAR=1e-4 (LFW all-pairs)"] == f"{100 * dlib['lfw_allpairs']['tar_at_far']['1e-04']:.2f}"
    assert d["CFP pose rank-1"] == f"{100 * dlib['cfp_ident_pose']['cmc']['1']:.2f}"
    assert d["CFP-FF"] == d["Low-quality rank-1"] == d["TAR@FAR=1e-4 (CFP frontal-profile all-pairs)"] == "—"
    c = rows["CosFace (s=30, m=0.35)"]
    v, f, t = (100 * np.array(x) for x in (lfw, ff, tar))
    assert c["n"] == 2
    assert c["LFW"] == f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"
    assert c["CFP-FF"] == f"{f.mean():.2f} ± {f.std(ddof=1):.2f}"
    assert c["TAR@FAR=1e-4 (LFW all-pairs)"] == f"{t.mean():.2f} ± {t.std(ddof=1):.2f}"
    assert c["Low-quality rank-1"] == "10.00 ± 0.00" and c["CFP-FP"] == "—"
    legend = df.attrs["legend"]
    assert df.attrs["record"] == "calibration_dlib-aaaaaaaa"
    assert "not recorded on this protocol" in legend and "calibration_dlib-aaaaaaaa" in legend
    assert "`cfp_ff`" in legend and "`lfw_ident_lq`" in legend and COMMAND in legend
    assert "`lfw_allpairs`" not in legend


def test_the_record_covering_most_protocols_is_used_the_newest_among_equals(tmp_path):
    root = tmp_path / "results"
    three = {k: _verification(0.9) for k in ("lfw", "cfp_fp", "cfp_ff")}
    five = {**{k: _verification(0.8) for k in ("lfw", "cfp_fp", "cfp_ff")},
            "lfw_allpairs": {"tar_at_far": {"1e-04": 0.5}}, "lfw_ident_lq": {"cmc": {"1": 0.4}}}
    calibration(root, "33333333", "2026-03-01T00:00:00+00:00", three)  # newest, fewest protocols
    calibration(root, "55555555", "2026-01-01T00:00:00+00:00", five)
    newest_of_most = calibration(root, "5555aaaa", "2026-02-01T00:00:00+00:00",
                                 {**five, "lfw": _verification(0.7)})
    writing = runs_root(root) / "calibration_dlib-77777777"  # being recorded: no metrics.json yet
    writing.mkdir()
    (writing / "calibration.yaml").write_text("kind: calibration\n")
    rec = calibration_record(root)
    assert rec is not None and rec.path == newest_of_most and len(rec.protocols) == 5
    df = calibration_table(root)
    assert df.attrs["record"] == newest_of_most.name
    assert _rows(df)[CALIBRATION_LABEL]["LFW"] == "70.00"
    assert "lacks" in df.attrs["legend"] and "`cfp_ident_pose`" in df.attrs["legend"]


def test_without_a_calibration_record_the_trained_rows_remain_with_a_note(tmp_path):
    root = tmp_path / "results"
    fabricate(root, COS, 0, lfw=0.8)
    fabricate(root, ARC, 0, lfw=0.82)
    df = calibration_table(root)
    assert list(df["Method"]) == ["CosFace (s=30, m=0.35)", "ArcFace (s=30, m=0.5)"]
    assert df.attrs["record"] is None and calibration_record(root) is None
    assert "No calibration record is present" in df.attrs["legend"] and COMMAND in df.attrs["legend"]
    only = calibration_table(root, rows=["ArcFace (s=30, m=0.5)"])
    assert list(only["Method"]) == ["ArcFace (s=30, m=0.5)"] and only.loc[0, "LFW"] == "82.00"
    with pytest.raises(ValueError, match=r"no runs recorded with configs/cpu/celeba_v2.yaml for \['SFace'\]"):
        calibration_table(root, rows=["SFace"])
    empty = calibration_table(tmp_path / "nothing")
    assert empty.empty and COMMAND in empty.attrs["legend"]


@pytest.mark.parametrize("damage, why", [
    (lambda m: "{not json", "cannot be read"),
    (lambda m: json.dumps([m]), "cannot be read"),
    (lambda m: json.dumps({**m, "suite": None}), "'suite.protocols'"),
    (lambda m: json.dumps({**m, "created_utc": "yesterday"}), "not an ISO date"),
    (lambda m: json.dumps({**m, "metrics": {"lfw": {**m["metrics"]["lfw"], "accuracy": "high"}},
                           "suite": {"protocols": {}}}), "lfw.accuracy is 'high', not a number"),
])
def test_a_damaged_record_raises_naming_its_folder(tmp_path, damage, why):
    root = tmp_path / "results"
    d = calibration(root, "dddddddd", "2026-01-01T00:00:00+00:00", {"lfw": _verification(0.9)})
    m = json.loads((d / "metrics.json").read_text())
    (d / "metrics.json").write_text(damage(m))
    with pytest.raises(ValueError, match="calibration_dlib-dddddddd is damaged") as e:
        calibration_table(root)
    assert why in str(e.value)


def test_the_committed_dlib_record_gives_its_lfw_accuracy():
    root = ROOT / "results"
    rec = calibration_record(root)
    assert rec is not None, "results/runs/ holds a calibration_dlib record (scripts/record_calibration.py)"
    lfw = json.loads((rec.path / "metrics.json").read_text())["suite"]["protocols"]["lfw"]["accuracy"]
    df = calibration_table(root)
    assert df.loc[df["Method"] == CALIBRATION_LABEL, "LFW"].item() == f"{100 * lfw:.2f}"
