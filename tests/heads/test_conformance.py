"""Every head against its official code, without the official code: golden fixtures recorded from it.

Each file in ``fixtures/conformance/`` (format in its README) holds three consecutive float64 training steps of one
official implementation on fixed inputs, and what that implementation computed: the loss, the gradients with
respect to the embeddings and to the class centres, the state after each step, and the random numbers it used
(ElasticFace's margins, Partial FC's sampled classes). One test per file runs the matching fr head on the same
inputs, carrying its state from step to step, and asserts agreement to 1e-9 (absolute) on every quantity; fr
agrees to 7e-13, and every real change of formula measured so far moves some quantity by 1e-4 or more. Rows
labelled -1 must get exactly zero gradient. The ``_2ranks`` files shard the class centres and the batch over 2
gloo processes, as insightface's Partial FC does over 2 GPUs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fr
from sharding import run_on_ranks

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "conformance"
FILES = sorted(FIXTURES.glob("*.npz"))
SHARDED = [p for p in FILES if "_2ranks" in p.stem]
ATOL = 1e-9


def load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, json.loads(arrays.pop("meta").item())


def build_head(meta: dict) -> fr.heads.Head:
    head = fr.create_head(meta["fr_head"], num_classes=meta["num_classes"], embedding_size=meta["embedding_size"],
                          **meta["fr_kwargs"]).double().train()
    for attr, value in (meta["fr_post_init"] or {}).items():  # e.g. {"rule.a": 1.0}
        *parents, last = attr.split(".")
        setattr(head.get_submodule(".".join(parents)), last, value)
    return head


def run_steps(path: Path, rank: int | None = None) -> dict:
    """fr on the fixture's steps (one head, its state carried over), alone or as ``rank`` of the sharded group.

    Returns the head's shard and, per step, the loss, the gradients, the state buffers, the sampled class
    indices and the statistics, as tensors and floats."""
    f, meta = load(path)
    head = build_head(meta)
    state = meta["state"] or {"names": []}
    buffers = {n: head.get_buffer(state["fr_buffer"][n].removeprefix("head.")) for n in state["names"]}
    with torch.no_grad():
        for name, buf in buffers.items():
            buf.copy_(torch.from_numpy(f[f"state_{name}_init"]).reshape(buf.shape))
    rows = cols = slice(None)
    if rank is not None:
        rows = slice(*meta["sharding"]["rows_of_rank"][rank])
        cols = slice(*meta["sharding"]["classes_of_rank"][rank])
    steps = []
    for k in range(meta["steps"]):
        with torch.no_grad():
            head.classifier.weight.copy_(torch.from_numpy(f[f"W_{k}"][cols]))
        head.classifier.weight.grad = None
        if f"seed_{k}" in f:  # immediately before the forward, as the official run
            seed = f[f"seed_{k}"]
            torch.manual_seed(int(seed if rank is None else seed[rank]))
        x = torch.from_numpy(f[f"x_{k}"][rows]).clone().requires_grad_(True)
        out = head(x, torch.from_numpy(f[f"labels_{k}"][rows]))  # norms from x, with their gradient
        out.loss.backward()
        index = head.classifier.last_index
        steps.append(dict(loss=out.loss.detach().clone(), grad_x=x.grad.clone(),
                          grad_W=head.classifier.weight.grad.clone(), stats=dict(out.stats),
                          state={n: b.detach().clone().reshape(-1) for n, b in buffers.items()},
                          sampled_index=None if index is None else index.clone()))
    return dict(class_start=head.classifier.class_start, num_local=head.classifier.num_local, steps=steps)


def _run_sharded(rank: int, paths: list[str]) -> dict:
    return {Path(p).stem: run_steps(Path(p), rank) for p in paths}


@pytest.fixture(scope="module")
def sharded_runs(tmp_path_factory) -> dict[str, list[dict]]:
    """Every ``_2ranks`` fixture run on 2 gloo ranks, in one pair of processes: {name: [rank 0, rank 1]}."""
    ranks = run_on_ranks(_run_sharded, ([str(p) for p in SHARDED],), world_size=2,
                         out_dir=tmp_path_factory.mktemp("conformance"))
    return {p.stem: [r[p.stem] for r in ranks] for p in SHARDED}


def skip_if_generator_changed(f: dict, meta: dict) -> None:
    """ElasticFace's recorded margins must be what torch's generator draws from the recorded seed; if torch
    changed its generator, the fixture no longer applies (this is not a fault of the head)."""
    for k in range(meta["steps"]):
        if f"margins_{k}" in f:
            torch.manual_seed(int(f[f"seed_{k}"]))
            draws = torch.normal(meta["fr_kwargs"]["m"], meta["fr_kwargs"]["sigma"], size=f[f"margins_{k}"].shape)
            if not np.array_equal(draws.double().numpy(), f[f"margins_{k}"]):
                pytest.skip("torch's random generator changed: the recorded margins no longer apply")


def assert_matches(run: dict, f: dict, meta: dict, rank: int | None) -> None:
    rows = cols = slice(None)
    where = meta["name"]
    if rank is not None:
        rows = slice(*meta["sharding"]["rows_of_rank"][rank])
        cols = slice(*meta["sharding"]["classes_of_rank"][rank])
        where += f" rank {rank}"
        assert (run["class_start"], run["num_local"]) == (cols.start, cols.stop - cols.start), \
            f"{where}: fr's shard of the classes differs from the official one"
    tol = dict(rtol=0.0, atol=ATOL)
    for k, got in enumerate(run["steps"]):
        at = f"{where}, step {k}"
        np.testing.assert_allclose(got["loss"].item(), f[f"loss_{k}"], **tol, err_msg=f"{at}: loss")
        grad_x = got["grad_x"].numpy()
        np.testing.assert_allclose(grad_x, f[f"grad_x_{k}"][rows], **tol, err_msg=f"{at}: gradient of x")
        ignored = f[f"labels_{k}"][rows] == -1
        assert ignored.any() and (grad_x[ignored] == 0).all(), f"{at}: rows labelled -1 received gradient"
        np.testing.assert_allclose(got["grad_W"].numpy(), f[f"grad_W_{k}"][cols], **tol,
                                   err_msg=f"{at}: gradient of the class centres")
        for name, value in got["state"].items():
            np.testing.assert_allclose(value.numpy(), f[f"state_{name}_{k}"], **tol, err_msg=f"{at}: state {name}")
        if f"sampled_index_{k}" in f:
            want = f[f"sampled_index_{k}"] if rank is None else f[f"sampled_index_{k}"][rank]
            np.testing.assert_array_equal(got["sampled_index"].numpy(), want,
                                          err_msg=f"{at}: Partial FC sampled other classes")
        if f"margins_{k}" in f:  # the head drew exactly the recorded margins (permuted by the "+" assignment)
            m = f[f"margins_{k}"]
            stats = got["stats"]
            np.testing.assert_allclose([stats["margin_mean"], stats["margin_std"], stats["margin_min"],
                                        stats["margin_max"]], [m.mean(), m.std(ddof=1), m.min(), m.max()],
                                       rtol=0.0, atol=1e-12, err_msg=f"{at}: ElasticFace margins")


def test_every_fixture_names_a_registered_head():
    assert FILES, f"no conformance fixture in {FIXTURES}"
    for path in FILES:
        _, meta = load(path)
        assert meta["format_version"] == 1 and meta["name"] == path.stem
        assert meta["fr_head"] in fr.list_heads() and path.stem.startswith(meta["fr_head"] + "__")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_matches_official_code(path, request):
    f, meta = load(path)
    if path in SHARDED:
        assert meta["world_size"] == 2
        for rank, run in enumerate(request.getfixturevalue("sharded_runs")[path.stem]):
            assert_matches(run, f, meta, rank)
    else:
        skip_if_generator_changed(f, meta)
        assert_matches(run_steps(path), f, meta, None)
