"""Generate the book's pages that come from the code, and prepare executed notebooks for the book.

``python -m fr.book`` (run by ``make book``) writes

* ``book/heads/*.md`` from :mod:`fr.heads`' registry, so the equations, defaults, citations and known
  deviations on the pages can never drift from the code;
* ``book/generated/chapters.md``, the front page's list of chapters in reading order (:data:`CHAPTERS`),
  each linked to its executed notebook under the title of the notebook's first heading;
* ``book/generated/claims.md``, the front page's table of the papers' claims and their verdicts.

``python -m fr.book --hide-inputs NB...`` tags the code cells of notebooks executed by papermill
``hide-input``, so the book shows results with the code behind a toggle (:func:`hide_inputs`).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

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
    lines = ["| paper | claim | source | paper's numbers | verdict | MDD (pp) | chapter |",
             "|---|---|---|---|---|---|---|"]
    for r in index.itertuples():
        paper = r.key + (" (reconstruction)" if r.reconstructed else "")
        claim = f"**{_md_cell(r.text)}**" if r.central else _md_cell(r.text)
        mdd = "—" if math.isnan(r.mdd) else f"{r.mdd:.2f}"  # no MDD: not run, or no spread
        lines.append(f"| {_md_cell(paper)} | {claim} | {_md_cell(r.source)} | {_md_cell(r.paper_numbers)} | "
                     f"{r.verdict} | {mdd} | [{r.chapter}]({r.link}) |")
    if index.empty:
        lines.append("| — | no paper specs | | | | | |")
    lines += ["", "Central claims in bold. Verdicts are computed from the recorded runs by the rule on the Methods "
              "page (confirmed, contradicted, not distinguishable at this scale, or not run); the MDD is the "
              "smallest true difference the recorded seeds could have detected with 80% power."]
    return "\n".join(lines) + "\n"


def markdown_table(df) -> str:
    """A DataFrame as a MyST (GitHub-style) table; ``|`` in cells escaped, missing values empty."""
    import pandas as pd

    def cell(v) -> str:
        if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)):
            return ""
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_front_matter(out_dir: Path | None = None, notebooks_dir: Path | None = None, *,
                       results_root=None) -> list[Path]:
    """Write ``chapters.md`` and ``claims.md`` (included by ``book/intro.md``) into ``out_dir``."""
    from .chapter import claims_index

    out_dir = Path(out_dir or repo_root() / "book" / "generated")
    notebooks_dir = Path(notebooks_dir or repo_root() / "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    chapters, claims = out_dir / "chapters.md", out_dir / "claims.md"
    chapters.write_text(chapters_page(sorted(notebooks_dir.glob("*.ipynb"))))
    claims.write_text(claims_page(claims_index(results_root)))
    return [chapters, claims]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="output folder of the head pages (default: book/heads)")
    ap.add_argument("--hide-inputs", nargs="+", type=Path, metavar="NOTEBOOK", default=None,
                    help="only tag the code cells of these executed notebooks 'hide-input' (in place), and exit")
    args = ap.parse_args(argv)
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
