"""Generate the book's pages that come from the code, and prepare executed notebooks for the book.

``python -m fr.book`` (run by ``make book``) writes

* ``book/heads/*.md`` from :mod:`fr.heads`' registry, so the equations, defaults, citations and known
  deviations on the pages can never drift from the code;
* ``book/generated/chapters.md``, the front page's list of chapters in reading order (:data:`CHAPTERS`),
  each linked to its executed notebook under the title of the notebook's first heading;
* ``book/generated/claims.md``, the front page's table of the papers' claims and their verdicts.

``python -m fr.book --readme`` rewrites the results table of ``README.md`` (between ``<!-- results:start -->`` and
``<!-- results:end -->``) from the recorded runs of the CPU recipe (:func:`readme_results`); a test fails while the
README's table differs from what the records give.

:func:`calibration_table` sets the pretrained dlib model's calibration record (``scripts/record_calibration.py``)
beside the CPU recipe's methods, on the README's columns and two more (the baselines chapter shows it).

``python -m fr.book --hide-inputs NB...`` tags the code cells of notebooks executed by papermill
``hide-input``, so the book shows results with the code behind a toggle (:func:`hide_inputs`).
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from .heads import head_info, list_heads
from .paths import repo_root


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return f"`{v!r}`" if isinstance(v, str) else f"{v}"


def head_page(name: str) -> str:
    info = head_info(name)
    lines = [f"# `{name}`", ""]
    if info["reconstructed"]:
        lines += [":::{warning}",
                  "**Reconstruction.** The paper's formulas are not available in full; this head is our reading of "
                  "what is published (see the notes below). Results with it are labelled *reconstructed* and are "
                  "not a replication.", ":::", ""]
    lines += [info["summary"], "", "$$", info["tex"], "$$", "",
              f"**Paper:** {info['paper']}  ", f"**Equation:** {info['equation']}  ",
              f"**Official code:** {info['official']}  ",
              f"**Class-centre initialisation:** `{info['default_init']}`  ",
              f"**Implementation:** `{info['class']}` in `fr/heads/`", ""]
    lines += ["## Defaults", "", "| parameter | default |", "|---|---|"]
    lines += [f"| `{k}` | {_fmt(v)} |" for k, v in info["defaults"].items()]
    lines += [""]
    if info["notes"]:
        lines += ["## Known deviations and readings taken", ""]
        lines += [f"- {n}" for n in info["notes"]]
        lines += [""]
    if info["doc"]:
        lines += ["## Docstring", "", "```text", info["doc"], "```", ""]
    args = ", ".join(f"{k}={v!r}" for k, v in list(info["defaults"].items())[:2])
    lines += ["## Usage", "", "```python", "import fr",
              f"head = fr.create_head({name!r}, num_classes=10_572, embedding_size=512{', ' + args if args else ''})",
              "out = head(embeddings, labels)   # HeadOutput(loss, logits, stats, labels)",
              "out.loss.backward()", "```", ""]
    return "\n".join(lines)


def index_page(names: list[str]) -> str:
    lines = ["# Loss heads", "",
             "Every head the book replicates, generated from the code's registry. Each head is a *margin rule* "
             "behind class centres (a full cosine classifier or Partial FC), created with "
             "`fr.create_head(name, num_classes=..., embedding_size=..., **overrides)`. Heads marked "
             "*reconstructed* come from papers whose formulas are not fully available.", "",
             "| head | paper | equation | reconstructed | defaults |", "|---|---|---|---|---|"]
    for n in names:
        info = head_info(n)
        paper = info["paper"].split(",")[0] + " — " + info["paper"].split(",")[1].strip() if "," in info["paper"] \
            else info["paper"]
        defaults = ", ".join(f"{k}={_fmt(v)}" for k, v in info["defaults"].items()
                             if not isinstance(v, bool))
        lines.append(f"| [`{n}`]({n}.md) | {paper} | {info['equation']} | "
                     f"{'yes' if info['reconstructed'] else ''} | {defaults} |")
    return "\n".join(lines) + "\n"


def write_pages(out_dir: Path | None = None) -> list[Path]:
    out_dir = Path(out_dir or repo_root() / "book" / "heads")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list_heads()
    written = []
    for stale in out_dir.glob("*.md"):
        if stale.stem != "index" and stale.stem not in names:
            stale.unlink()
    for n in names:
        p = out_dir / f"{n}.md"
        p.write_text(head_page(n))
        written.append(p)
    idx = out_dir / "index.md"
    idx.write_text(index_page(names))
    return [idx, *written]


#: cell tags under which myst-nb already hides or removes a cell's input
_INPUT_HIDDEN = {"hide-input", "hide-cell", "remove-input", "remove-cell"}


def hide_inputs(path: str | Path) -> int:
    """Tag every code cell of the notebook at ``path`` ``hide-input`` (in place) and return how many were tagged.

    Jupyter Book then shows each cell's outputs with its code folded behind a toggle. Cells already hidden or
    removed by one of their tags are left alone; running it twice changes nothing. Meant for the executed copies
    under ``book/executed/``: the notebooks under ``notebooks/`` stay as written."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable Jupyter notebook ({e})") from None
    tagged = 0
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if _INPUT_HIDDEN.isdisjoint(tags):
            tags.append("hide-input")
            tagged += 1
    if tagged:
        # nbformat's own layout (one-space indent, UTF-8, final newline), so the file stays a valid notebook
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return tagged


def notebook_title(path: str | Path) -> str:
    """The text of a notebook's first markdown heading (its stem when it has none)."""
    path = Path(path)
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell.get("cell_type") != "markdown":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for line in src.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return path.stem


#: the book's chapters in reading order (notebook stem -> what it reproduces); the front page lists them all,
#: linked where the notebook is part of the build
CHAPTERS = {
    "01_baselines": "the baselines every paper compares with: NormFace softmax, SphereFace, CosFace, ArcFace, "
                    "CombinedMargin, CurricularFace, MV-Softmax, AdaFace, MagFace",
    "02_adasin": "AdaSin (reconstructed from its abstract)",
    "03_smaface_ablation": "SMAFace: the sample-mining weight, its variants and the paper's ablation",
    "04_sface": "SFace: sigmoid-constrained hypersphere loss, with label noise",
    "05_elasticface": "ElasticFace: random margins, ElasticFace+",
    "06_recurricularface": "ReCurricularFace: CurricularFace revisited",
    "07_lh2face": "LH2Face (reconstructed from its abstract and a summary)",
    "08_harmonic": "the harmonic loss and non-Euclidean distance layers",
    "09_recipe_study": "the CPU recipe: seed-to-seed spread and the smallest difference it can detect",
    "10_speed": "speed against references (heads, evaluation, input pipeline, training step), goals checked; GPU runs",
}


def chapters_page(notebooks: list[Path], executed: str = "executed") -> str:
    """The front page's list of chapters: every chapter of :data:`CHAPTERS` and every other notebook given, in
    file-name (reading) order, linked to its executed copy (``executed``: that folder relative to the page that
    includes this one) when its notebook is among ``notebooks``, else marked as not in this build."""
    present = {nb.stem: nb for nb in notebooks}
    lines = ["| | chapter | reproduces |", "|---|---|---|"]
    for stem in sorted(set(CHAPTERS) | set(present)):
        what = CHAPTERS.get(stem, "")
        if stem in present:
            nb = present[stem]
            lines.append(f"| `{stem}` | [{notebook_title(nb)}]({executed}/{nb.name}) | {what} |")
        else:
            lines.append(f"| `{stem}` | *not in this build* | {what} |")
    return "\n".join(lines) + "\n"


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_page(index) -> str:
    """The claims table (markdown) from :func:`fr.chapter.claims_index`'s DataFrame: one line per claim with the
    paper's numbers, the verdict, the minimum detectable difference it rests on and a link to its chapter."""
    lines = ["| paper | claim | source | paper's numbers | verdict | seeds | MDD (pp) | chapter |",
             "|---|---|---|---|---|---|---|---|"]
    for r in index.itertuples():
        paper = r.key + (" (reconstruction)" if r.reconstructed else "")
        claim = f"**{_md_cell(r.text)}**" if r.central else _md_cell(r.text)
        mdd = "—" if math.isnan(r.mdd) else f"{r.mdd:.2f}"  # no MDD: not run, or no spread
        seeds = {"cut": "cut", "cut row": f"{r.n} (cut row)"}.get(r.cut, f"{r.n} of {max(r.n, r.planned)}")
        lines.append(f"| {_md_cell(paper)} | {claim} | {_md_cell(r.source)} | {_md_cell(r.paper_numbers)} | "
                     f"{r.verdict} | {seeds} | {mdd} | [{r.chapter}]({r.link}) |")
    if index.empty:
        lines.append("| — | no paper specs | | | | | | |")
    lines += ["", "Central claims in bold. Verdicts are computed from the recorded runs by the rule on the Methods "
              "page (confirmed, contradicted, not distinguishable at this scale, or not run); *seeds*: the paired "
              "seeds the verdict rests on, of those the grid plans for the comparison (*cut*: a row of it is cut "
              "from the CPU grid; *cut row*: recorded anyway), so a verdict on fewer seeds than planned is "
              "provisional; the MDD is the "
              "smallest true difference the recorded seeds could have detected with 80% power."]
    return "\n".join(lines) + "\n"


def write_front_matter(out_dir: Path | None = None, notebooks_dir: Path | None = None, *,
                       results_root=None) -> list[Path]:
    """Write ``chapters.md``, ``claims.md`` and ``grid.md`` (included by ``book/intro.md``) into ``out_dir``."""
    from .chapter import claims_index
    from .grid import budget_markdown, progress_markdown

    out_dir = Path(out_dir or repo_root() / "book" / "generated")
    notebooks_dir = Path(notebooks_dir or repo_root() / "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    chapters, claims, grid = out_dir / "chapters.md", out_dir / "claims.md", out_dir / "grid.md"
    chapters.write_text(chapters_page(sorted(notebooks_dir.glob("*.ipynb"))))
    claims.write_text(claims_page(claims_index(results_root)))
    grid.write_text(f"{budget_markdown(results_root)} {progress_markdown(results_root)}\n")
    return [chapters, claims, grid]


# --- the README's results table ------------------------------------------------------------------------------------

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
#: the recipe the README's table reports (every CPU-scale comparison shares it)
README_RECIPE = "configs/cpu/celeba_v2.yaml"
#: the README's metric columns: header -> record column (fractions, shown in percent)
README_COLUMNS = {"LFW": "lfw.accuracy", "CFP-FP": "cfp_fp.accuracy", "CFP-FF": "cfp_ff.accuracy",
                  "LFW low-quality": "lfw_lq.accuracy", "TAR@FAR=1e-4 (LFW all-pairs)": "lfw_allpairs.tar@1e-04",
                  "Low-quality rank-1": "lfw_ident_lq.rank1"}


def _hashed_leaves(cfg, prefix: str = "") -> dict:
    """A config's fields that enter its hash, as dotted keys (tuples as lists, mappings as values)."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.metadata.get("hash", True) is False:
            continue
        if dataclasses.is_dataclass(v):
            out.update(_hashed_leaves(v, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = list(v) if isinstance(v, tuple) else v
    return out


def recipe_overrides(cfg, recipe: str = README_RECIPE) -> dict:
    """The dotted overrides of ``recipe`` that give ``cfg`` up to its seed (``runtime.seed`` left out), checked:
    ``load_config(recipe, overrides + seed)`` has ``cfg``'s config hash, else a ValueError names the run."""
    from .config import config_hash, load_config
    from .results import run_id

    base = _hashed_leaves(load_config(repo_root() / recipe))
    leaves = _hashed_leaves(cfg)
    ov = {k: v for k, v in leaves.items() if k != "runtime.seed" and (k not in base or base[k] != v)}
    rebuilt = load_config(repo_root() / recipe, {**ov, "runtime.seed": cfg.runtime.seed})
    if config_hash(rebuilt) != config_hash(cfg):
        raise ValueError(f"run {run_id(cfg)} is not {recipe} plus overrides (tried {ov}); its config differs in "
                         f"a way the overrides cannot express")
    return ov


def _row_labels(recipe: str) -> dict[str, tuple[int, str]]:
    """Config hash at seed 0 -> (reading-order position, label) of the chapters' grid rows on ``recipe``."""
    from .config import config_hash, load_config
    from .papers import load_spec, spec_keys

    out: dict[str, tuple[int, str]] = {}
    for key in spec_keys():
        spec = load_spec(key)
        if spec.grid.recipe != recipe:
            continue
        for row in spec.grid.rows.values():
            h = config_hash(load_config(repo_root() / recipe, {**row.overrides, "runtime.seed": 0}))
            out.setdefault(h, (len(out), row.label))
    return out


def _method_groups(results_root=None, recipe: str = README_RECIPE) -> list[dict]:
    """The runs recorded with ``recipe`` grouped by method (their overrides of the recipe, seeds apart), in the
    chapters' reading order (their grid rows' labels), then the others by head. Per method: ``method`` (its label:
    the grid row's label and the head parameters, plus what else differs from the recipe where no grid row names
    it), ``overrides`` (those of the command that records it: head name and parameters first, even where they are
    the recipe's) and ``runs`` (:func:`fr.results.load_runs` rows, by seed)."""
    import dataclasses

    from .config import config_hash, load_config
    from .report import format_params
    from .results import load_run, load_runs, runs_root

    name = load_config(repo_root() / recipe).name
    runs = load_runs(results_root, name=name)
    labels = _row_labels(recipe)
    groups: dict[str, dict] = {}
    for r in runs.to_dict("records"):
        cfg = load_run(runs_root(results_root) / r["run_id"]).config
        ov = recipe_overrides(cfg, recipe)
        key = json.dumps(ov, sort_keys=True)
        if key not in groups:
            seed0 = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, seed=0))
            pos, label = labels.get(config_hash(seed0), (len(labels), cfg.head.name))
            params = format_params(cfg.head.params, cfg.head.name)
            method = f"{label} ({params})" if params else label
            rest = [f"{k}={v}" for k, v in ov.items() if not k.startswith("head.")]
            if rest and pos == len(labels):  # no grid row's label says what else differs from the recipe
                method += "; " + ", ".join(rest)
            # the command names the head and its parameters even where they are the recipe's (same config)
            order = list(head_info(cfg.head.name)["defaults"]) if cfg.head.name in list_heads() else []
            params_in_order = dict(sorted(cfg.head.params.items(),
                                          key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
            cmd_ov = {"head.name": cfg.head.name, "head.params": params_in_order,
                      **{k: v for k, v in ov.items() if k not in ("head.name", "head.params")}}
            groups[key] = {"sort": (pos, cfg.head.name, key), "method": method, "overrides": cmd_ov, "runs": []}
        groups[key]["runs"].append(r)
    out = sorted(groups.values(), key=lambda g: g["sort"])
    for g in out:
        g["runs"].sort(key=lambda r: r["seed"])
    return out


def _seed_cells(runs: list[dict], columns) -> list[str]:
    """Per record column, mean ± std over ``runs`` in percent (:func:`fr.chapter._cell`), ``(n=k)`` where only k
    of the runs have the metric, ``—`` where none has."""
    from .chapter import _cell

    cells = []
    for col in columns:
        vals = [float(r[col]) for r in runs if r.get(col) is not None and not math.isnan(float(r[col]))]
        cell = _cell(vals)
        if vals and len(vals) < len(runs):
            cell += f" (n={len(vals)})"
        cells.append(cell)
    return cells


def readme_results(results_root=None, recipe: str = README_RECIPE) -> str:
    """The README's results table (markdown): one row per method recorded with ``recipe`` (:func:`_method_groups`),
    each column of :data:`README_COLUMNS` as mean ± std over seeds in percent (``(n=k)`` where fewer seeds have
    the metric, ``—`` where none has), and the command that records the row."""
    from .chapter import train_command

    groups = _method_groups(results_root, recipe)
    header = ["Method", "seeds", *README_COLUMNS, "command (seed 0)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in groups:
        seeds = [int(r["seed"]) for r in g["runs"]]
        cells = _seed_cells(g["runs"], README_COLUMNS.values())
        cmd = train_command(recipe, g["overrides"])
        lines.append(f"| {_md_cell(g['method'])} | {len(seeds)} ({', '.join(map(str, seeds))}) | "
                     f"{' | '.join(cells)} | `{cmd}` |")
    if not groups:
        lines.append("| no run recorded | 0 |" + " — |" * len(README_COLUMNS) + " |")
    lines += ["", f"Mean ± std over seeds (n runs, their seeds in brackets), in %, of the runs recorded under "
                  f"`results/runs/` with `{recipe}`; `(n=k)`: only k of the seeds recorded that metric; `—`: none "
                  f"did. Each command records seed 0; `--set runtime.seed=K` records seed K. Regenerated from the "
                  f"records by `python -m fr.book --readme`."]
    return "\n".join(lines) + "\n"


def readme_with_results(text: str, table: str, *, source: str = "README.md") -> str:
    """``text`` with what lies between :data:`README_START` and :data:`README_END` replaced by ``table``."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{source}: no results section; it needs a line {README_START} and, after it, a line "
                         f"{README_END}")
    return text[: start + len(README_START)] + "\n" + table + text[end:]


def write_readme(path: Path | None = None, results_root=None) -> bool:
    """Rewrite the results table of ``path`` (default the repository's README.md) from the records under
    ``results_root`` (default the repository's ``results/``, the committed records); True if it changed."""
    path = Path(path or repo_root() / "README.md")
    results_root = results_root if results_root is not None else repo_root() / "results"
    old = path.read_text(encoding="utf-8")
    new = readme_with_results(old, readme_results(results_root), source=str(path))
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


# --- the calibration anchor: a pretrained model beside the CPU recipe's --------------------------------------------

#: the calibration table's columns (header -> record column, fractions shown in percent): the README's, with the
#: all-pairs TAR on CFP frontal x profile after LFW's and the pose identification rank-1 after the low-quality one
CALIBRATION_COLUMNS = {**{h: c for h, c in README_COLUMNS.items() if not c.endswith(".rank1")},
                       "TAR@FAR=1e-4 (CFP frontal-profile all-pairs)": "cfp_fp_allpairs.tar@1e-04",
                       **{h: c for h, c in README_COLUMNS.items() if c.endswith(".rank1")},
                       "CFP pose rank-1": "cfp_ident_pose.rank1"}
#: the calibration records' run name (``scripts/record_calibration.py`` files them as ``<name>-<settings hash>``)
CALIBRATION_NAME = "calibration_dlib"
CALIBRATION_LABEL = "dlib ResNet-29, pretrained (calibration)"
CALIBRATION_COMMAND = "python scripts/record_calibration.py --protocols all"


@dataclass(frozen=True)
class CalibrationRecord:
    """A complete calibration record read back: its folder, when it was recorded, its results flattened into
    :func:`fr.results.flatten_result`'s columns, the protocols it covers and how its model was run."""

    path: Path
    created_utc: datetime
    row: dict
    protocols: tuple[str, ...]
    alignment: str | None
    flip: str | None

    @property
    def run_id(self) -> str:
        return self.path.name


def read_calibration(path) -> CalibrationRecord | None:
    """The calibration record in folder ``path`` (``scripts/record_calibration.py``), read with
    :func:`fr.results.load_run`: its results by protocol are the suite's, plus the ``.bin`` results of ``metrics``
    the suite lacks. None while the record is being written (no complete ``metrics.json`` yet); a ValueError
    naming the folder when the record is damaged."""
    from .results import flatten_result, load_run

    path = Path(path)
    redo = f"re-record it with `{CALIBRATION_COMMAND} --force`, or remove the folder"

    def damaged(why: str) -> ValueError:
        return ValueError(f"calibration record {path} is damaged: {why}; {redo}")

    try:
        rec = load_run(path)
    except (OSError, ValueError, TypeError, AttributeError) as e:  # unreadable file, bad JSON, not a JSON object
        raise damaged(f"its metrics.json cannot be read ({e})") from e
    m = rec.metrics
    if m is None or not rec.complete:
        return None
    if m.get("kind") != "calibration":
        raise damaged(f"its metrics.json has kind {m.get('kind')!r}, not 'calibration'")
    bins, suite = m.get("metrics"), m.get("suite")
    protocols = suite.get("protocols") if isinstance(suite, dict) else None
    if not isinstance(bins, dict) or not isinstance(protocols, dict):
        raise damaged("its metrics.json needs a mapping 'metrics' and a mapping 'suite.protocols'")
    results = {**bins, **protocols}
    bad = sorted(name for name, r in results.items() if not isinstance(r, dict))
    if bad:
        raise damaged(f"the results of {bad} are not mappings")
    try:
        created = datetime.fromisoformat(str(m.get("created_utc")))
    except ValueError:
        raise damaged(f"created_utc {m.get('created_utc')!r} is not an ISO date") from None
    row = {k: v for name, r in results.items() for k, v in flatten_result(name, r).items()}
    for col in CALIBRATION_COLUMNS.values():
        v = row.get(col)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise damaged(f"{col} is {v!r}, not a number")
    model = m.get("model") if isinstance(m.get("model"), dict) else {}
    embedding = suite.get("embedding") if isinstance(suite.get("embedding"), dict) else {}
    return CalibrationRecord(path, created, row, tuple(sorted(results)), model.get("alignment"),
                             embedding.get("flip"))


def calibration_record(results_root=None) -> CalibrationRecord | None:
    """The calibration record the book shows: of the complete ``calibration_dlib-*`` records under
    ``<results_root>/runs``, the one covering the most protocols, the newest (``created_utc``) among equals;
    None when there is none. A damaged record raises (:func:`read_calibration`)."""
    from .results import runs_root

    found = [read_calibration(p) for p in sorted(runs_root(results_root).glob(f"{CALIBRATION_NAME}-*"))
             if (p / "calibration.yaml").is_file()]
    found = [r for r in found if r is not None]
    return max(found, key=lambda r: (len(r.protocols), r.created_utc), default=None)


def calibration_table(results_root=None, recipe: str = README_RECIPE, rows=None) -> pd.DataFrame:
    """An anchor for the CPU recipe's numbers: the pretrained dlib model (:func:`calibration_record`, one model:
    n = 1, no std) above one row per method recorded with ``recipe`` (:func:`_method_groups`, mean ± std over
    seeds, n runs), each column of :data:`CALIBRATION_COLUMNS` in percent as in the chapters' tables; ``—`` where
    a row has no record of the protocol, ``(n=k)`` where only k seeds have it.

    rows: the methods to show, by their ``Method`` label (``"CosFace (s=30, m=0.35)"``), in that order; None:
    every method recorded. ``attrs["legend"]`` says what the cells are (markdown), and, where no calibration
    record is present, the command that records it; ``attrs["record"]`` is the record's folder name (or None)."""
    cal = calibration_record(results_root)
    groups = _method_groups(results_root, recipe)
    if rows is not None:
        by_label = {g["method"]: g for g in groups}
        unknown = [r for r in rows if r not in by_label]
        if unknown:
            raise ValueError(f"no runs recorded with {recipe} for {unknown}; recorded: {sorted(by_label)}")
        groups = [by_label[r] for r in rows]
    header = ["Method", "n", *CALIBRATION_COLUMNS]
    table = [[g["method"], len(g["runs"]), *_seed_cells(g["runs"], CALIBRATION_COLUMNS.values())] for g in groups]
    if cal is not None:
        table.insert(0, [CALIBRATION_LABEL, 1, *_seed_cells([cal.row], CALIBRATION_COLUMNS.values())])
    df = pd.DataFrame(table, columns=header)
    legend = [f"Per cent. Trained rows: mean ± std over the seeds recorded with `{recipe}` (n runs; `(n=k)`: only "
              f"k of them recorded that protocol). TAR@FAR is pooled over all pairs (this project's all-pairs "
              f"estimator), not insightface's fold-wise VAL@FAR. `—`: not recorded on this protocol."]
    if cal is None:
        legend.append(f"No calibration record is present (a pretrained model evaluated on these protocols): "
                      f"`{CALIBRATION_COMMAND}` records it (it needs the `calibration` extra, "
                      f"`pip install -e '.[calibration]'`).")
    else:
        how = ", ".join(f"{k} {v}" for k, v in (("alignment", cal.alignment), ("flip", cal.flip)) if v)
        legend.append(f"The dlib row is one pretrained model, record `{cal.run_id}` "
                      f"({how + ', ' if how else ''}recorded {cal.created_utc:%Y-%m-%d}), evaluated through the same "
                      f"loaders and protocols.")
        missing = sorted({c.partition(".")[0] for c in CALIBRATION_COLUMNS.values()} - set(cal.protocols))
        if missing:
            legend.append(f"Its record lacks {', '.join(f'`{p}`' for p in missing)}: `{CALIBRATION_COMMAND}` "
                          f"records every protocol.")
    df.attrs["legend"] = " ".join(legend)
    df.attrs["record"] = cal.run_id if cal is not None else None
    return df


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="output folder of the head pages (default: book/heads)")
    ap.add_argument("--hide-inputs", nargs="+", type=Path, metavar="NOTEBOOK", default=None,
                    help="only tag the code cells of these executed notebooks 'hide-input' (in place), and exit")
    ap.add_argument("--readme", action="store_true",
                    help="only rewrite README.md's results table from the recorded runs (readme_results), and exit")
    args = ap.parse_args(argv)
    if args.readme:
        changed = write_readme()
        print(f"README.md results table {'rewritten' if changed else 'already up to date'}")
        return
    if args.hide_inputs:
        for nb in args.hide_inputs:
            print(f"{nb}: {hide_inputs(nb)} code cells folded")
        return
    written = write_pages(args.out)
    print(f"wrote {len(written)} head pages to {written[0].parent}")
    front = write_front_matter()
    print(f"wrote {', '.join(p.name for p in front)} to {front[0].parent}")


if __name__ == "__main__":
    main()
