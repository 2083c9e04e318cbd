"""Paper specs (fr/papers/*.yaml): every spec validates; a bad spec fails naming file, key and field; the SMAFace
transcription agrees with the averages the paper prints."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml

from fr.papers import PAPERS_DIR, SpecError, load_spec, metric_columns, parse_spec, spec_keys

ROOT = Path(__file__).resolve().parents[1]
SMAFACE = yaml.safe_load((PAPERS_DIR / "smaface.yaml").read_text())


@pytest.mark.parametrize("key", spec_keys())
def test_every_spec_validates(key):
    spec = load_spec(key)
    assert spec.key == key and spec.chapter
    assert (ROOT / "notebooks" / f"{spec.chapter}.ipynb").exists(), f"{key}: no notebook {spec.chapter}.ipynb"
    for t in spec.our_tables:
        assert set(t.rows) <= set(spec.grid.rows)
    assert any(c.central for c in spec.claims) or not spec.claims


def test_specs_ship_as_package_data():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.yaml" in cfg["tool"]["setuptools"]["package-data"]["fr.papers"]


def test_metric_columns_are_the_record_names():
    cols = metric_columns()
    assert {"lfw.accuracy", "cfp_fp.accuracy", "cfp_ff.accuracy", "lfw_lq.accuracy", "lfw_allpairs.tar@1e-04",
            "cfp_ff_allpairs.tar@1e-06", "lfw_ident_lq.rank1", "cfp_ident_pose.rank20"} <= cols
    assert "lfw.rank1" not in cols and "lfw_allpairs.tar@1e-07" not in cols


def _bad(mutate, *, check_configs: bool = False, source: str = "fr/papers/smaface.yaml"):
    data = copy.deepcopy(SMAFACE)
    mutate(data)
    with pytest.raises(SpecError) as e:
        parse_spec(data, source, check_configs=check_configs)
    return str(e.value)


def test_unknown_head_names_the_row_and_the_known_heads():
    msg = _bad(lambda d: d["grid"]["rows"]["adaface"]["overrides"].update({"head.name": "adafce"}))
    assert msg.startswith("fr/papers/smaface.yaml: grid.rows.adaface.overrides.head.name: unknown head 'adafce'")
    assert "did you mean 'adaface'?" in msg and "registered heads:" in msg


def test_unknown_head_parameter_names_it():
    msg = _bad(lambda d: d["grid"]["rows"]["smaface_p04"]["overrides"]["head.params"].update({"p_0": 0.4}))
    assert "grid.rows.smaface_p04.overrides.head.params" in msg and "['p_0']" in msg and "'p0'" in msg


def test_an_invalid_override_key_is_caught_by_the_config_loader():
    msg = _bad(lambda d: d["grid"]["rows"]["cosface"]["overrides"].update({"optim.lrr": 0.1}), check_configs=True)
    assert "grid.rows.cosface.overrides" in msg and "lrr" in msg


def test_claims_must_reference_grid_rows():
    def mutate(d):
        d["claims"][0]["treatment"] = "smaface_p6"
    msg = _bad(mutate)
    assert "claims[0] (smaface_beats_adaface).treatment: unknown grid row 'smaface_p6'" in msg


def test_our_tables_must_reference_grid_rows_and_paper_tables():
    assert "our_tables[1] (table2).rows: unknown grid row 'adaface2'" in _bad(
        lambda d: d["our_tables"][1]["rows"].append("adaface2"))
    assert "our_tables[0] (table1).mirrors: no paper table 'table9'" in _bad(
        lambda d: d["our_tables"][0].update(mirrors="table9"))


def test_unknown_metric_columns_are_named():
    def in_claim(d):
        d["claims"][2]["metrics"] = ["lfw.acc"]
    msg = _bad(in_claim)
    assert "claims[2] (p06_beats_p04).metrics[0]: unknown metric column 'lfw.acc'" in msg
    assert "did you mean 'lfw.accuracy'?" in msg

    def in_table(d):
        d["our_tables"][1]["columns"]["LFW"] = "lfw_ident.rank2"
    assert "our_tables[1] (table2).columns.LFW.metric: unknown metric column 'lfw_ident.rank2'" in _bad(in_table)


def test_our_columns_must_be_the_papers_unless_marked_extra():
    def mutate(d):
        d["our_tables"][1]["columns"]["CFP_FP"] = "cfp_fp.accuracy"
    msg = _bad(mutate)
    assert "our_tables[1] (table2).columns.CFP_FP: not a column of paper table 'table2'" in msg
    assert "extra: true" in msg


def test_a_row_whose_length_differs_from_the_columns_is_refused():
    def mutate(d):
        d["paper_tables"][0]["rows"][3] = ["SMAFace", "ResNet50", 0.6, 97.09]
    msg = _bad(mutate)
    assert "paper_tables[0] (table1).rows[3]: has 4 cells but the table has 5 columns" in msg


def test_missing_and_unknown_fields_and_bad_values():
    assert "fr/papers/smaface.yaml: title: missing (required)" in _bad(lambda d: d.pop("title"))
    assert "unknown key(s) ['clams']" in _bad(lambda d: d.update(clams=[]))
    assert "text_available: must be one of" in _bad(lambda d: d.update(text_available="some"))
    assert "reconstructed: must be bool" in _bad(lambda d: d.update(reconstructed="no"))
    assert "direction: must be one of" in _bad(lambda d: d["claims"][0].update(direction="more"))
    assert "runtime.seed is set per run" in _bad(
        lambda d: d["grid"]["rows"]["adaface"]["overrides"].update({"runtime.seed": 3}))
    assert "claims: id 'p06_beats_p04' is used twice" in _bad(lambda d: d["claims"].append(dict(d["claims"][2])))
    assert "need 1 <= seeds <= central_seeds" in _bad(lambda d: d["grid"].update(central_seeds=2))
    assert "derived_metrics.hq_mean.mean_of: unknown metric column 'lfw.acc'" in _bad(
        lambda d: d["derived_metrics"]["hq_mean"].update(mean_of=["lfw.acc"]))


def test_the_key_must_match_the_file_name(tmp_path):
    data = copy.deepcopy(SMAFACE)
    p = tmp_path / "other.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="key 'smaface' does not match the file name 'other.yaml'"):
        load_spec(p, check_configs=False)
    with pytest.raises(FileNotFoundError, match="no paper spec .*nosuch.yaml"):
        load_spec("nosuch")


# --- the SMAFace transcription -----------------------------------------------------------------------------

def _table(tid):
    return load_spec("smaface", check_configs=False).table(tid)


def test_smaface_table2_rows_reproduce_their_printed_average():
    t = _table("table2")
    sets = ["LFW", "CFP-FP", "CPLFW", "AgeDB", "CALFW", "CFP-FF", "VGG2-FP"]
    idx = [t.columns.index(c) for c in sets]
    checked = 0
    for r in t.rows:
        vals = [r[i] for i in idx]
        if r[t.columns.index("AVG")] is not None:
            assert None not in vals
            assert np.mean(vals) == pytest.approx(r[t.columns.index("AVG")], abs=0.011), r
            checked += 1
    assert checked == 10


def test_smaface_table5_tinyface_average_is_the_mean_of_its_ranks():
    t = _table("table5")
    r1, r5, avg = (t.columns.index(c) for c in ("TinyFace Rank-1", "TinyFace Rank-5", "TinyFace AVG"))
    rows = [r for r in t.rows if r[avg] is not None]
    assert len(rows) == 13
    for r in rows:
        assert (r[r1] + r[r5]) / 2 == pytest.approx(r[avg], abs=0.011), r


def test_smaface_table1_best_threshold_and_central_claim():
    spec = load_spec("smaface", check_configs=False)
    t = spec.table("table1")
    r50 = [r for r in t.rows if r[1] == "ResNet50" and r[0] == "SMAFace" and r[3] == 1.0]
    best = max(r50, key=lambda r: r[4])
    assert best[2] == 0.6 and best[4] == 97.09
    central = [c for c in spec.claims if c.central]
    assert [(c.treatment, c.baseline) for c in central] == [("smaface_p06", "adaface")]
    assert central[0].paper == {"treatment": 97.09, "baseline": 97.00, "metric": "HQ Datasets (%)"}
    assert spec.seeds_of("smaface_p06") == spec.seeds_of("adaface") == 5
    assert spec.seeds_of("smaface_p04", cut=False) == 3 and spec.seeds_of("smaface_p04") == 0  # the budget cut it


# --- the budget's cuts --------------------------------------------------------------------------------------------

def test_a_rows_own_seeds_cut_or_reduce_it_and_the_budget_must_say_why():
    spec = parse_spec(copy.deepcopy(SMAFACE), "fr/papers/smaface.yaml")
    short = spec.cut_rows()
    assert short["smaface_p05"] == (0, 3) and "smaface_p06" not in short and "adaface" not in short
    assert spec.seeds_of("smaface_p05") == 0 and spec.seeds_of("smaface_p05", cut=False) == 3
    assert spec.seeds_of("smaface_p06") == spec.seeds_of("smaface_p06", cut=False) == 5  # central, not cut
    assert spec.grid.budget.strip()

    def reduce_central(d):
        d["grid"]["rows"]["smaface_p06"]["seeds"] = 3
    assert parse_spec(_mutated(reduce_central), "x.yaml").cut_rows()["smaface_p06"] == (3, 5)

    def no_budget(d):
        d["grid"].pop("budget")
    msg = _bad(no_budget)
    assert "grid.budget" in msg and "smaface_p05" in msg and "must say what was cut and why" in msg
    msg = _bad(lambda d: d["grid"]["rows"]["adaface"].update({"seeds": -1}))
    assert "grid.rows.adaface.seeds" in msg and "integer >= 0" in msg
    msg = _bad(lambda d: d["grid"]["rows"]["adaface"].update({"seeds": "3"}))
    assert "grid.rows.adaface.seeds" in msg

    def raise_only(d):  # more seeds than the design's is no cut: no budget note needed
        d["grid"].pop("budget")
        for r in d["grid"]["rows"].values():
            r.pop("seeds", None)
        d["grid"]["rows"]["adaface"]["seeds"] = 7
    spec = parse_spec(_mutated(raise_only), "x.yaml")
    assert spec.cut_rows() == {} and spec.seeds_of("adaface") == 7


def _mutated(mutate):
    data = copy.deepcopy(SMAFACE)
    mutate(data)
    return data
