"""The evaluation suite: one embedding pass, every protocol. On a miniature data root with the shared layout
(tests/ident_fixture.py): which images each protocol uses, that each distinct image is embedded once, that the
.bin protocols give evaluate_verification's numbers, and that the rest equal brute-force references.
Data-marked: the same on the shared sets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ident_fixture
from fr.data import load_bin
from fr.data.identification import load_faces, load_manifest
from fr.data.transforms import LowQuality
from fr.eval import evaluate_verification
from fr.eval.allpairs import all_pairs_verification
from fr.eval.calibration import PixelFeatures
from fr.eval.identification import probe_ranks
from fr.eval.suite import (DEFAULT_PROTOCOLS, SUITE_PROTOCOLS, evaluate_features, evaluate_suite, prepare_suite)
from fr.paths import find_data

LQ = LowQuality(face_size=8)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("FR_CACHE", str(tmp_path / "cache"))
    return ident_fixture.build(tmp_path / "data")["root"]


class Counting(torch.nn.Module):
    """Wraps a model and counts the images it is asked to embed."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.input_spec, self.seen = inner, inner.input_spec, 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.inner(x)


def _rows(m, *paths):
    return [m.paths.index(p) for p in paths]


def test_plans_pick_the_documented_images(root):
    data = prepare_suite(root, size=16, low_quality=LQ)
    m = data.manifest
    inv = {int(r): k for k, r in enumerate(data.rows)}

    def paths(slots):
        return sorted(m.paths[int(data.rows[s])] for s in slots)

    p = data.plans["lfw_ident_lq"]
    # gallery: first detector-aligned of each identity with >= 2 images (Person_B_0001 is a fallback)
    assert paths(p.gallery) == [f"lfw/Person_{c}/Person_{c}_{n:04d}.jpg"
                                for c, n in (("A", 1), ("B", 2), ("C", 1), ("D", 1), ("E", 1))]
    # probes: the others among each identity's first 10 (Person_A_0011..14 are beyond the cap)
    probes = sorted(m.paths[int(data.lq_rows[s])] for s in p.probes)
    assert len(probes) == 9 + 4 + 2 + 1 + 1 and "lfw/Person_A/Person_A_0011.jpg" not in probes
    assert "lfw/Person_B/Person_B_0001.jpg" in probes and p.lq
    # distractors: every single-image identity (Person_J is a byte copy of Person_I: one embedding for both)
    assert len(p.distractors) == 5 and len(set(p.distractors.tolist())) == 4
    assert data.fingerprints["cross_identity_duplicates"] == [["lfw/Person_I/Person_I_0001.jpg",
                                                               "lfw/Person_J/Person_J_0001.jpg"]]
    clean = data.plans["lfw_ident"]
    assert not clean.lq and paths(clean.probes) == probes
    ap = data.plans["lfw_allpairs"]
    assert ap.a.size == sum(ident_fixture.LFW_SIZES) and ap.eligible_a.sum() == sum(ident_fixture.LFW_SIZES) - 4
    pose = data.plans["cfp_ident_pose"]
    assert paths(pose.gallery) == [f"cfp/{k:03d}/frontal/01.jpg" for k in range(1, 5)]
    assert len(pose.probes) == 16 and all("/profile/" in q for q in paths(pose.probes))
    assert data.plans["cfp_fp_allpairs"].a.size == 40 and data.plans["cfp_fp_allpairs"].b.size == 16
    # every distinct file once: 31 LFW files with one duplicate, 56 CFP files
    assert data.images.shape == (30 + 56, 3, 16, 16) and len(inv) == 86
    # degraded: the 17 probes and the 11 distinct second images of the lfw.bin pairs, 5 of them files both use
    lq_pairs = data.plans["lfw_lq"]
    seconds = {m.paths[int(data.lq_rows[s])] for s in lq_pairs.slots[1::2]}
    assert lq_pairs.degraded[1::2].all() and not lq_pairs.degraded[::2].any() and len(seconds) == 11
    assert len(seconds & set(probes)) == 5 and data.lq_images.shape == (17 + 11 - 5, 3, 16, 16)


def test_each_distinct_image_is_embedded_once_and_subsets_embed_less(root):
    model = Counting(PixelFeatures(grid=4, input_size=16))
    res = evaluate_suite(model, data_root=root, low_quality=LQ, flip="sum", batch_size=32)
    assert model.seen == 2 * (86 + 23)               # image and mirror, once each
    assert res.embedding["n_images_embedded"] == 109 and set(res.results) == set(DEFAULT_PROTOCOLS)
    model.seen = 0
    alone = evaluate_suite(model, data_root=root, protocols=("lfw",), flip="none")
    from fr.data.bins import read_bin_raw
    distinct = len(set(read_bin_raw(root / "verification" / "lfw.bin")[0]))
    assert model.seen == distinct < 86
    # data prepared for every protocol serves a subset: only that subset's images are embedded
    model.seen = 0
    data = prepare_suite(root, size=16, low_quality=LQ)
    sub = evaluate_suite(model, data=data, protocols=("lfw",), flip="none")
    assert model.seen == distinct and sub.embedding["n_images_embedded"] == distinct
    assert sub["lfw"].to_dict() == alone["lfw"].to_dict() and sub.timing["data_reused"]


def test_bin_protocols_give_evaluate_verification_numbers(root):
    from fr.backbones import create_backbone

    torch.manual_seed(0)
    model = create_backbone("iresnet_tiny", input_size=16, embedding_size=32)
    res = evaluate_suite(model, data_root=root, protocols=("lfw", "cfp_fp", "cfp_ff"), batch_size=16)
    for name in ("lfw", "cfp_fp", "cfp_ff"):
        ref = evaluate_verification(model, load_bin(root / "verification" / f"{name}.bin", size=16),
                                    batch_size=16).to_dict()
        got = res[name].to_dict()
        assert got == ref, name


def test_other_protocols_equal_brute_force_on_the_same_features(root):
    model = PixelFeatures(grid=4, input_size=16)
    data = prepare_suite(root, size=16, low_quality=LQ)
    from fr.eval.embed import extract_embeddings
    emb, norms = extract_embeddings(model, data.images)
    lq_emb, _ = extract_embeddings(model, data.lq_images)
    res = evaluate_features(data, emb, norms, lq_emb, flip="sum", allpairs_fars=(1e-2, 1e-1, 0.3))
    m = load_manifest(root / "identification")
    # LFW all pairs, brute force over files (duplicates embedded from their own bytes)
    lfw = m.select("lfw")
    f = extract_embeddings(model, load_faces(lfw, size=16, cache=False))[0].numpy()
    ids = lfw.identities
    cap = np.zeros(len(lfw), bool)
    for name in np.unique(ids):
        cap[np.flatnonzero(ids == name)[:10]] = True
    ref = all_pairs_verification(f, ids, genuine_eligible=cap, fars=(1e-2, 1e-1, 0.3), block=7)
    got = res["lfw_allpairs"]
    assert (got.n_genuine, got.n_impostor) == (45 + 10 + 3 + 1 + 1, 465 - (91 + 10 + 3 + 1 + 1))
    assert got.tar_at_far == pytest.approx(ref.tar_at_far, abs=1e-12)
    # CFP frontal x profile
    cfp = m.select("cfp")
    fc = extract_embeddings(model, load_faces(cfp, size=16, cache=False))[0].numpy()
    fr_ = np.array(["/frontal/" in p for p in cfp.paths])
    ref = all_pairs_verification(fc[fr_], cfp.identities[fr_], fc[~fr_], cfp.identities[~fr_],
                                 fars=(1e-2, 1e-1, 0.3))
    assert (res["cfp_fp_allpairs"].n_genuine, res["cfp_fp_allpairs"].n_impostor) == (160, 480)
    assert res["cfp_fp_allpairs"].tar_at_far == pytest.approx(ref.tar_at_far, abs=1e-12)
    assert (res["cfp_ff_allpairs"].n_genuine, res["cfp_ff_allpairs"].n_impostor) == (180, 600)
    # pose identification: ranks by a full sort against the four first frontals
    gal = _rows(cfp, *[f"cfp/{k:03d}/frontal/01.jpg" for k in range(1, 5)])
    r = probe_ranks(fc[~fr_], cfp.identities[~fr_], fc[gal], cfp.identities[gal])
    assert res["cfp_ident_pose"].cmc[1] == pytest.approx(np.mean(r == 1))
    assert res["cfp_ident_pose"].n_gallery == 4 and res["cfp_ident_pose"].n_probes == 16
    # low-quality probes are the degraded clean probes
    lq = res["lfw_ident_lq"]
    assert (lq.n_probes, lq.n_gallery, lq.n_distractors) == (17, 5, 5)
    assert "probes-lq(face=8)" in lq.protocol and "probes-clean" in res["lfw_ident"].protocol


def test_lfw_lq_is_lfw_verification_with_every_second_image_degraded(root):
    """lfw_lq equals evaluate_verification-style scoring of lfw.bin with the second image of each pair degraded
    at the file resolution (then resized, as load_faces does), and lfw's own numbers are untouched by it."""
    from fr.data.transforms import resize
    from fr.eval import verify_embeddings
    from fr.eval.embed import extract_embeddings

    model = PixelFeatures(grid=4, input_size=16)
    res = evaluate_suite(model, data_root=root, protocols=("lfw", "lfw_lq"), low_quality=LQ, batch_size=8)
    vset = load_bin(root / "verification" / "lfw.bin")
    images = vset.images.clone()
    images[1::2] = LQ(images[1::2])
    ref = verify_embeddings(extract_embeddings(model, resize(images, 16))[0], vset.issame, name="lfw_lq",
                            flip="sum", sha256=res["lfw"].sha256)
    got = res["lfw_lq"]
    assert got.protocol == ref.protocol + "/second-image-lq(face=8)"
    assert (got.correct == ref.correct).all() and got.accuracy == ref.accuracy and got.n_pairs == 20
    assert got.thresholds == ref.thresholds and got.sha256 == res["lfw"].sha256
    alone = evaluate_suite(model, data_root=root, protocols=("lfw",), low_quality=LQ)
    assert alone["lfw"].to_dict() == res["lfw"].to_dict()
    lq_alone = evaluate_suite(model, data_root=root, protocols=("lfw_lq",), low_quality=LQ)   # no clean lfw table
    assert lq_alone["lfw_lq"].to_dict() == got.to_dict()
    assert res.settings["lfw_lq"] == {"degraded": "the second image of every pair", "low_quality": "face=8"}


def test_results_are_labelled_and_json_ready(root):
    res = evaluate_suite(PixelFeatures(grid=4, input_size=16), data_root=root, low_quality=LQ)
    d = json.loads(json.dumps(res.to_dict()))
    fp = load_manifest(root / "identification").fingerprint
    assert d["fingerprints"]["identification"] == fp
    for name, r in d["protocols"].items():
        assert r["protocol"] and r["title"] == SUITE_PROTOCOLS[name]
        if name in ("lfw", "cfp_fp", "cfp_ff", "lfw_lq"):
            assert r["sha256"] == d["fingerprints"]["bins"][name.removesuffix("_lq")]
        else:
            assert r["sha256"] == fp
    assert "stand-in" in d["protocols"]["lfw_allpairs"]["title"]
    assert "IJB-B" not in d["protocols"]["lfw_allpairs"]["title"].replace("not IJB-B/C", "")
    assert d["protocols"]["lfw_allpairs"]["protocol"].startswith("all-pairs pooled TAR@FAR/cos/floor")
    assert "TinyFace-style" in d["protocols"]["lfw_ident_lq"]["title"]
    assert len(res.summary().splitlines()) == len(DEFAULT_PROTOCOLS)
    assert d["timing"]["embed"] > 0 and set(d["timing"]["protocols"]) == set(DEFAULT_PROTOCOLS)


def test_bad_requests_are_refused(root):
    with pytest.raises(KeyError, match="unknown suite protocols"):
        prepare_suite(root, ("lfw", "ijbc"), size=16)
    data = prepare_suite(root, ("lfw",), size=16)
    with pytest.raises(ValueError, match="decoded at"):
        evaluate_suite(PixelFeatures(grid=4, input_size=32), data=data, protocols=("lfw",))
    with pytest.raises(KeyError, match="prepared without"):
        evaluate_suite(PixelFeatures(grid=4, input_size=16), data=data, protocols=("lfw", "cfp_fp"))
    with pytest.raises(ValueError, match="lfw_cap"):
        prepare_suite(root, ("lfw_allpairs",), size=16, lfw_cap=1)
    (root / "verification" / "cfp_ff.bin").unlink()
    with pytest.raises(FileNotFoundError, match="cfp_ff.bin"):
        prepare_suite(root, ("cfp_ff",), size=16)


# --- the shared data -----------------------------------------------------------------------------------------

def _shared_root():
    p = find_data("identification/MANIFEST.tsv")
    if p is None or find_data("verification/lfw.bin") is None:
        pytest.skip("identification/ and verification/ not under the data root (set FR_DATA=/work/shared/datasets)")
    return p.parents[1]


@pytest.mark.data
def test_shared_bins_give_evaluate_verification_numbers():
    """One pass over the folder files reproduces evaluate_verification on lfw, cfp_fp and cfp_ff (fold-balanced
    200-pair subsets, a random backbone at 32 px)."""
    from fr.backbones import create_backbone

    root = _shared_root()
    torch.manual_seed(0)
    model = create_backbone("iresnet_tiny", input_size=32, embedding_size=64)
    res = evaluate_suite(model, data_root=root, protocols=("lfw", "cfp_fp", "cfp_ff"), bin_pairs=200,
                         batch_size=200, cache=False)
    for name in ("lfw", "cfp_fp", "cfp_ff"):
        vset = load_bin(root / "verification" / f"{name}.bin", size=32, n_pairs=200)
        assert res[name].to_dict() == evaluate_verification(model, vset, batch_size=200).to_dict(), name


@pytest.mark.data
def test_shared_lfw_lq_degrades_the_second_image_of_each_pair():
    """lfw_lq on the shared data (fold-balanced 200-pair subset, a random backbone at 32 px) equals lfw.bin's
    pairs with the second image degraded by TINYFACE_LIKE at 112 px, then resized."""
    from fr.backbones import create_backbone
    from fr.data.transforms import resize
    from fr.eval import verify_embeddings
    from fr.eval.embed import extract_embeddings
    from fr.eval.suite import TINYFACE_LIKE

    root = _shared_root()
    torch.manual_seed(0)
    model = create_backbone("iresnet_tiny", input_size=32, embedding_size=64)
    res = evaluate_suite(model, data_root=root, protocols=("lfw_lq",), bin_pairs=200, batch_size=200, cache=False)
    vset = load_bin(root / "verification" / "lfw.bin", n_pairs=200)
    images = vset.images.clone()
    images[1::2] = TINYFACE_LIKE(images[1::2])
    ref = verify_embeddings(extract_embeddings(model, resize(images, 32), batch_size=200)[0], vset.issame)
    got = res["lfw_lq"]
    assert got.name == "lfw_lq[200]" and got.protocol.endswith("/second-image-lq(face=24)")
    assert (got.correct == ref.correct).all() and got.thresholds == ref.thresholds and got.auc == ref.auc


@pytest.mark.data
@pytest.mark.slow
def test_shared_suite_counts_and_a_pixel_floor():
    """The whole suite on the shared data with down-sampled pixels: the documented pair and probe counts."""
    root = _shared_root()
    res = evaluate_suite(PixelFeatures(grid=8, input_size=32), data_root=root, batch_size=512)
    ap, fp, ff = res["lfw_allpairs"], res["cfp_fp_allpairs"], res["cfp_ff_allpairs"]
    assert (ap.n_genuine, ap.n_impostor) == (14508, 13233 * 13232 // 2 - 242257)
    assert (fp.n_genuine, fp.n_impostor) == (20000, 10_000_000 - 20000)
    assert (ff.n_genuine, ff.n_impostor) == (22500, 5000 * 4999 // 2 - 22500)
    lq = res["lfw_ident_lq"]
    assert (lq.n_probes, lq.n_gallery, lq.n_distractors) == (4740, 1680, 4069)
    assert (res["cfp_ident_pose"].n_probes, res["cfp_ident_pose"].n_gallery) == (2000, 500)
    # degraded: the 4,740 probes and the second images of the 6,000 LFW pairs, 2,177 of them not probes
    assert res.embedding["n_images_embedded"] == 20203 + 6917 and res["lfw_lq"].n_pairs == 6000
    assert ap.tar_at_far["1e-06"] is not None and ap.impostors_at_far["1e-06"] == 87
    assert lq.cmc[1] < res["lfw_ident"].cmc[1]      # degrading the probes costs even the pixel floor


def test_benchmark_script_runs_on_a_small_data_root(root, tmp_path):
    """benchmarks/bench_eval_suite.py end to end on the miniature data root: embed rows (old path first, then an
    opt-in one, with their exactness), then today, the cold decode and the suite, whose lfw and cfp_fp equal
    today's (exit status 0)."""
    import csv
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_eval_suite.py"
    spec = importlib.util.spec_from_file_location("bench_eval_suite", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "bench.csv"
    assert mod.main(["--data", str(root), "--size", "16", "--out", str(out), "--sample", "12", "--rounds", "2",
                     "--paths", "old,fold_bn"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [(r["kind"], r["impl"].split(" ")[0]) for r in rows] == [
        ("embed", "old"), ("embed", "fold_bn"), ("final_eval", "today"), ("final_eval", "suite"),
        ("final_eval", "suite")]
    assert rows[0]["bit_exact_vs_old"] == "True" and rows[0]["speedup_vs_old"] == "1.0"
    assert float(rows[1]["max_abs_diff_vs_old"]) < 1e-4 and rows[1]["n_images_embedded"] == "12"
    assert rows[2]["n_images_embedded"] == "80" and rows[4]["n_images_embedded"] == "109"
    assert "identical to today's: True" in rows[4]["notes"] and float(rows[4]["cpu_s"]) > 0
    assert all(r["load_avg_1m"] and r["cpu_count"] and r["commit"] for r in rows)
    with pytest.raises(SystemExit, match="first must be 'old'"):
        mod.main(["--data", str(root), "--size", "16", "--paths", "fold_bn,old", "--skip-final-eval"])
