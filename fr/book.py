"""Generate the book's registry-driven pages: one page per loss head, an index table, and the claims table.

``python -m fr.book`` (run by ``make book``) writes ``book/heads/*.md`` from :mod:`fr.heads`' registry, so
the equations, defaults, citations and known deviations on the pages can never drift from the code, and
``book/generated/claims.md``: every paper's claims with the verdicts the recorded runs give
(:func:`fr.chapter.claims_index`), which the front page includes.
"""
from __future__ import annotations

import argparse
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


def write_claims(out: Path | None = None, *, results_root=None) -> Path:
    from .chapter import claims_index

    out = Path(out or repo_root() / "book" / "generated" / "claims.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(claims_page(claims_index(results_root)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: book/heads)")
    ap.add_argument("--claims", type=Path, default=None, help="claims table (default: book/generated/claims.md)")
    args = ap.parse_args(argv)
    written = write_pages(args.out)
    print(f"wrote {len(written)} head pages to {written[0].parent}")
    print(f"wrote the claims table to {write_claims(args.claims)}")


if __name__ == "__main__":
    main()
