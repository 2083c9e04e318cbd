"""Paper specs: one YAML file per paper (``fr/papers/<key>.yaml``), the data a book chapter is built from.

A spec holds the paper's own tables as printed, our grid of runs at CPU scale (overrides of one shared recipe,
so identical rows in two chapters are the same run), our version of each table, and the paper's claims with the
comparison that tests each. :func:`load_spec` reads and validates one; every problem is reported with the file,
the key and the field, e.g.::

    fr/papers/smaface.yaml: claims[0] (smaface_beats_adaface).treatment: unknown grid row 'smaface_p6'
    (did you mean 'smaface_p06'?); grid rows: adaface, smaface_p04, ...

Schema (keys in ``[]`` are optional; the extensions beyond the shared design are marked *ext*)::

    key, chapter, title, citation, text_available (full | abstract | summary), reconstructed, scale_note
    [paper_config]      ext: the paper-scale config (configs/paper/...) that ``prepare(mode="paper")`` launches
    [paper_overrides]   ext: dotted overrides applied after each row's own in paper mode (e.g. the paper's s)
    paper_tables:       [{id, source, caption, columns, rows, [notes]} | {id, source, unavailable}]
    grid:               {recipe, rows: {row_id: {label, overrides, [note], [seeds]}}, seeds, [central_seeds], [cut],
                         [budget]}
                        ``cut``: what of the paper's grid is out of reach at this scale. A row's ``seeds`` (ext)
                        overrides the spec's for that row, to fit the grid's CPU budget: 0 cuts the row, fewer
                        than the design's reduces it; ``budget`` (required then) says what was cut and why
    [derived_metrics]   ext: {name: {mean_of: [metric, ...], label}}: a metric computed per run from others
    our_tables:         [{id, mirrors, rows: [row_id, ...], columns: {paper column: spec}, [notes]}]
                        spec: "metric" | {metric, stand_in} | {unavailable} | ext {metric, [stand_in], extra: true}
                        (a column of ours that the paper's table does not have)
    claims:             [{id, text, source, treatment, baseline, metrics, direction, [paper], [central]}]
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["PAPERS_DIR", "KEYS", "GRID_BUDGET_HOURS", "TEXT_AVAILABLE", "SpecError", "PaperTable", "GridRow", "Grid", "ColumnSpec",
           "OurTable", "Claim", "PaperSpec", "spec_keys", "spec_path", "load_spec", "parse_spec", "metric_columns",
           "is_metric"]

PAPERS_DIR = Path(__file__).resolve().parent
#: the papers of the book, in reading order (a spec file for each is expected eventually)
KEYS = ("baselines", "adasin", "smaface", "sface", "elasticface", "recurricularface", "lh2face", "harmonic")
TEXT_AVAILABLE = ("full", "abstract", "summary")
DIRECTIONS = ("greater", "less")
#: CPU hours of this machine that the union of the chapters' CPU grids may take (``python -m fr.grid``); the
#: rows' own ``seeds`` cut each grid to fit it, and ``grid.budget`` says how
GRID_BUDGET_HOURS = 12.0
ALLPAIRS_FARS = tuple(f"1e-0{k}" for k in range(1, 7))
RANKS = (1, 5, 20)


class SpecError(ValueError):
    """A paper spec that does not follow the schema; the message names the file, the key and the field."""


def metric_columns() -> frozenset[str]:
    """Every metric column a run record can have (:func:`fr.results.load_runs`' flattened names, fractions):
    ``<set>.accuracy`` for the verification sets, ``<set>_allpairs.tar@1e-0k`` and ``<ident>.rank{1,5,20}``.
    The protocol names come from :mod:`fr.eval.suite`, plus ``lfw_lq`` (low-quality LFW verification)."""
    from ..eval.suite import SUITE_PROTOCOLS

    names = list(SUITE_PROTOCOLS) + ["lfw_lq"]
    out = set()
    for p in names:
        if p.endswith("_allpairs"):
            out.update(f"{p}.tar@{far}" for far in ALLPAIRS_FARS)
        elif "ident" in p:
            out.update(f"{p}.rank{k}" for k in RANKS)
        else:
            out.add(f"{p}.accuracy")
    return frozenset(out)


def is_metric(name: str) -> bool:
    return name in metric_columns()


# --- the spec, as read ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables as printed (cells: numbers, strings, ``None`` for "-"), or a note saying
    that the paper gives none (``unavailable``)."""

    id: str
    source: str
    caption: str = ""
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    notes: str = ""
    unavailable: str | None = None


@dataclass(frozen=True)
class GridRow:
    id: str
    label: str
    overrides: Mapping[str, Any]
    note: str = ""
    seeds: int | None = None  # None: the spec's (grid.seeds, or grid.central_seeds for a central row)


@dataclass(frozen=True)
class Grid:
    recipe: str
    rows: Mapping[str, GridRow]
    seeds: int
    central_seeds: int
    cut: str = ""
    budget: str = ""


@dataclass(frozen=True)
class ColumnSpec:
    """How one column of our table is filled: a metric (record column or derived metric), a stand-in metric
    (``stand_in`` names what it stands in for), or ``unavailable`` (why there is no number)."""

    name: str
    metric: str | None = None
    stand_in: str = ""
    unavailable: str = ""
    extra: bool = False


@dataclass(frozen=True)
class OurTable:
    id: str
    mirrors: str
    rows: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    notes: str = ""


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    source: str
    treatment: str
    baseline: str
    metrics: tuple[str, ...]
    direction: str = "greater"
    paper: Mapping[str, Any] = field(default_factory=dict)
    central: bool = False


@dataclass(frozen=True)
class PaperSpec:
    key: str
    chapter: str
    title: str
    citation: str
    text_available: str
    reconstructed: bool
    scale_note: str
    paper_tables: tuple[PaperTable, ...]
    grid: Grid
    our_tables: tuple[OurTable, ...]
    claims: tuple[Claim, ...]
    derived_metrics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    derived_labels: Mapping[str, str] = field(default_factory=dict)
    paper_config: str | None = None
    paper_overrides: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def central_rows(self) -> set[str]:
        return {r for c in self.claims if c.central for r in (c.treatment, c.baseline)}

    def seeds_of(self, row: str, *, cut: bool = True) -> int:
        """How many seeds the grid trains for ``row``: the row's own ``seeds`` where it sets one (0: cut from the
        CPU grid), else ``central_seeds`` for rows of a central claim and ``seeds`` for the others. ``cut=False``
        ignores the rows' own seeds: the grid as the design asks for it, before it was cut to the budget."""
        own = self.grid.rows[row].seeds
        if cut and own is not None:
            return own
        return self.grid.central_seeds if row in self.central_rows() else self.grid.seeds

    def cut_rows(self) -> dict[str, tuple[int, int]]:
        """The rows the grid trains with fewer seeds than the design asks for: row -> (seeds trained, seeds
        asked), in grid order; (0, k) is a row cut altogether."""
        out = {}
        for rid in self.grid.rows:
            have, want = self.seeds_of(rid), self.seeds_of(rid, cut=False)
            if have < want:
                out[rid] = (have, want)
        return out

    def metrics_used(self) -> list[str]:
        """Every metric the tables and claims read, in first-use order."""
        out = [c.metric for t in self.our_tables for c in t.columns if c.metric]
        out += [m for c in self.claims for m in c.metrics]
        return list(dict.fromkeys(out))

    def table(self, table_id: str) -> PaperTable:
        for t in self.paper_tables:
            if t.id == table_id:
                return t
        raise KeyError(f"{self.source}: no paper table {table_id!r}; tables: {[t.id for t in self.paper_tables]}")


# --- reading and checking ------------------------------------------------------------------------------------

class _Ctx:
    """Where a value came from, for error messages: ``<file>: <path>``."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, msg: str) -> SpecError:
        return SpecError(f"{self.source}: {where}: {msg}")


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _req(ctx: _Ctx, d: Mapping, key: str, where: str, types, *, default=..., nonempty: bool = True):
    if key not in d or d[key] is None:
        if default is not ...:
            return default
        raise ctx.fail(f"{where}.{key}" if where else key, "missing (required)")
    v = d[key]
    tys = types if isinstance(types, tuple) else (types,)
    if not isinstance(v, tys) or (isinstance(v, bool) and bool not in tys):  # YAML's true is no int
        names = " or ".join(t.__name__ for t in tys)
        raise ctx.fail(f"{where}.{key}" if where else key, f"must be {names}, got {type(v).__name__} {v!r}")
    if nonempty and isinstance(v, (str, list, dict)) and not v:
        raise ctx.fail(f"{where}.{key}" if where else key, "must not be empty")
    return v


def _unknown_keys(ctx: _Ctx, d: Mapping, known: set[str], where: str) -> None:
    extra = sorted(set(d) - known)
    if extra:
        raise ctx.fail(where or "top level", f"unknown key(s) {extra}{_suggest(extra[0], known)}; "
                                             f"known: {', '.join(sorted(known))}")


def _paper_table(ctx: _Ctx, d: Any, i: int) -> PaperTable:
    where = f"paper_tables[{i}]"
    if not isinstance(d, Mapping):
        raise ctx.fail(where, f"must be a mapping, got {d!r}")
    tid = _req(ctx, d, "id", where, str)
    where = f"paper_tables[{i}] ({tid})"
    _unknown_keys(ctx, d, {"id", "source", "caption", "columns", "rows", "notes", "unavailable"}, where)
    source = _req(ctx, d, "source", where, str)
    if "unavailable" in d:
        extra = sorted({"columns", "rows"} & set(d))
        if extra:
            raise ctx.fail(where, f"a table marked unavailable has no {extra}")
        return PaperTable(tid, source, caption=d.get("caption") or "", notes=d.get("notes") or "",
                          unavailable=_req(ctx, d, "unavailable", where, str))
    columns = _req(ctx, d, "columns", where, list)
    if not all(isinstance(c, str) and c for c in columns) or len(set(columns)) != len(columns):
        raise ctx.fail(f"{where}.columns", f"must be distinct non-empty strings, got {columns!r}")
    rows = _req(ctx, d, "rows", where, list)
    for j, r in enumerate(rows):
        if not isinstance(r, list):
            raise ctx.fail(f"{where}.rows[{j}]", f"must be a list of cells, got {r!r}")
        if len(r) != len(columns):
            raise ctx.fail(f"{where}.rows[{j}]", f"has {len(r)} cells but the table has {len(columns)} columns "
                                                 f"{columns}: {r!r}")
        bad = [c for c in r if not (c is None or isinstance(c, (int, float, str)))]
        if bad:
            raise ctx.fail(f"{where}.rows[{j}]", f"cells must be numbers, strings or null, got {bad!r}")
    return PaperTable(tid, source, caption=_req(ctx, d, "caption", where, str), columns=tuple(columns),
                      rows=tuple(tuple(r) for r in rows), notes=d.get("notes") or "")


def _check_overrides(ctx: _Ctx, where: str, overrides: Mapping[str, Any]) -> None:
    """The head a row names must be registered and take the parameters it is given."""
    from ..heads import head_defaults, list_heads

    name = overrides.get("head.name")
    if name is None:
        return
    heads = list_heads()
    if name not in heads:
        raise ctx.fail(f"{where}.overrides.head.name", f"unknown head {name!r}{_suggest(name, heads)}; "
                                                       f"registered heads: {', '.join(heads)}")
    params = overrides.get("head.params") or {}
    if not isinstance(params, Mapping):
        raise ctx.fail(f"{where}.overrides.head.params", f"must be a mapping, got {params!r}")
    known = head_defaults(name)
    extra = sorted(set(params) - set(known))
    if extra:
        raise ctx.fail(f"{where}.overrides.head.params", f"head {name!r} has no parameter(s) {extra}"
                                                         f"{_suggest(extra[0], known)}; its parameters: "
                                                         f"{', '.join(known)}")


def _grid(ctx: _Ctx, d: Any, *, check_configs: bool) -> Grid:
    if not isinstance(d, Mapping):
        raise ctx.fail("grid", f"must be a mapping, got {d!r}")
    _unknown_keys(ctx, d, {"recipe", "rows", "seeds", "central_seeds", "cut", "budget"}, "grid")
    recipe = _req(ctx, d, "recipe", "grid", str)
    seeds = _req(ctx, d, "seeds", "grid", int)
    central = _req(ctx, d, "central_seeds", "grid", int, default=seeds)
    if seeds < 1 or central < seeds:
        raise ctx.fail("grid", f"need 1 <= seeds <= central_seeds, got seeds={seeds}, central_seeds={central}")
    rows_in = _req(ctx, d, "rows", "grid", dict)
    rows: dict[str, GridRow] = {}
    for rid, r in rows_in.items():
        where = f"grid.rows.{rid}"
        if not isinstance(rid, str) or not re.fullmatch(r"[A-Za-z0-9_]+", rid):
            raise ctx.fail(where, "row ids are letters, digits and underscores")
        if not isinstance(r, Mapping):
            raise ctx.fail(where, f"must be a mapping {{label, overrides}}, got {r!r}")
        _unknown_keys(ctx, r, {"label", "overrides", "note", "seeds"}, where)
        own = r.get("seeds")
        if own is not None and (not isinstance(own, int) or isinstance(own, bool) or own < 0):
            raise ctx.fail(f"{where}.seeds", f"must be an integer >= 0 (0 cuts the row), got {own!r}")
        ov = _req(ctx, r, "overrides", where, dict, default={})
        if not all(isinstance(k, str) for k in ov):
            raise ctx.fail(f"{where}.overrides", "keys must be dotted config keys (strings)")
        if "runtime.seed" in ov:
            raise ctx.fail(f"{where}.overrides", "runtime.seed is set per run from grid.seeds, not by a row")
        _check_overrides(ctx, where, ov)
        rows[rid] = GridRow(rid, _req(ctx, r, "label", where, str), dict(ov), r.get("note") or "", own)
    if check_configs:
        from ..config import load_config
        from ..paths import repo_root

        path = repo_root() / recipe
        if not path.exists():
            raise ctx.fail("grid.recipe", f"no config file {path}")
        for rid, row in rows.items():
            try:
                load_config(path, row.overrides)
            except (ValueError, TypeError, KeyError) as e:
                raise ctx.fail(f"grid.rows.{rid}.overrides", f"not a valid config with {recipe}: {e}") from None
    return Grid(recipe, rows, seeds, central, d.get("cut") or "", d.get("budget") or "")


def _derived(ctx: _Ctx, d: Any) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    if d is None:
        return {}, {}
    if not isinstance(d, Mapping):
        raise ctx.fail("derived_metrics", f"must be a mapping name -> {{mean_of, label}}, got {d!r}")
    metrics, labels = {}, {}
    for name, spec in d.items():
        where = f"derived_metrics.{name}"
        if not isinstance(name, str) or is_metric(name) or not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_@-]+)?", name):
            raise ctx.fail(where, "a derived metric needs a new lower-case name that is not a record column")
        if not isinstance(spec, Mapping):
            raise ctx.fail(where, f"must be a mapping {{mean_of, label}}, got {spec!r}")
        _unknown_keys(ctx, spec, {"mean_of", "label"}, where)
        parts = _req(ctx, spec, "mean_of", where, list)
        for m in parts:
            if not is_metric(m):
                raise ctx.fail(f"{where}.mean_of", f"unknown metric column {m!r}{_suggest(m, metric_columns())}")
        metrics[name] = tuple(parts)
        labels[name] = _req(ctx, spec, "label", where, str)
    return metrics, labels


def _check_metric(ctx: _Ctx, where: str, m: Any, derived: Mapping[str, Any]) -> str:
    if not isinstance(m, str):
        raise ctx.fail(where, f"a metric is a column name (string), got {m!r}")
    if not (is_metric(m) or m in derived):
        known = sorted(metric_columns() | set(derived))
        raise ctx.fail(where, f"unknown metric column {m!r}{_suggest(m, known)}; metric columns look like "
                              "lfw.accuracy, lfw_allpairs.tar@1e-04, lfw_ident_lq.rank1"
                              + (f", or a derived metric ({', '.join(derived)})" if derived else ""))
    return m


def _our_table(ctx: _Ctx, d: Any, i: int, tables: Mapping[str, PaperTable], rows: Mapping[str, GridRow],
               derived: Mapping[str, Any]) -> OurTable:
    where = f"our_tables[{i}]"
    if not isinstance(d, Mapping):
        raise ctx.fail(where, f"must be a mapping, got {d!r}")
    tid = _req(ctx, d, "id", where, str)
    where = f"our_tables[{i}] ({tid})"
    _unknown_keys(ctx, d, {"id", "mirrors", "rows", "columns", "notes"}, where)
    mirrors = _req(ctx, d, "mirrors", where, str)
    if mirrors not in tables:
        raise ctx.fail(f"{where}.mirrors", f"no paper table {mirrors!r}{_suggest(mirrors, tables)}; "
                                           f"paper tables: {', '.join(tables)}")
    paper_cols = tables[mirrors].columns
    row_ids = _req(ctx, d, "rows", where, list)
    for r in row_ids:
        if r not in rows:
            raise ctx.fail(f"{where}.rows", f"unknown grid row {r!r}{_suggest(r, rows)}; grid rows: "
                                            f"{', '.join(rows)}")
    cols = []
    for name, spec in _req(ctx, d, "columns", where, dict).items():
        cw = f"{where}.columns.{name}"
        if isinstance(spec, str):
            spec = {"metric": spec}
        if not isinstance(spec, Mapping):
            raise ctx.fail(cw, f"must be a metric name or a mapping (metric/stand_in/unavailable), got {spec!r}")
        _unknown_keys(ctx, spec, {"metric", "stand_in", "unavailable", "extra"}, cw)
        extra = bool(spec.get("extra", False))
        if paper_cols and name not in paper_cols and not extra:
            raise ctx.fail(cw, f"not a column of paper table {mirrors!r}{_suggest(name, paper_cols)} "
                               f"(its columns: {list(paper_cols)}); mark a column of ours only with extra: true")
        if ("metric" in spec) == ("unavailable" in spec):
            raise ctx.fail(cw, "give exactly one of metric (with an optional stand_in) or unavailable")
        if "unavailable" in spec:
            cols.append(ColumnSpec(name, unavailable=_req(ctx, spec, "unavailable", cw, str), extra=extra))
        else:
            cols.append(ColumnSpec(name, metric=_check_metric(ctx, f"{cw}.metric", spec["metric"], derived),
                                   stand_in=_req(ctx, spec, "stand_in", cw, str, default=""), extra=extra))
    return OurTable(tid, mirrors, tuple(row_ids), tuple(cols), d.get("notes") or "")


def _claim(ctx: _Ctx, d: Any, i: int, rows: Mapping[str, GridRow], derived: Mapping[str, Any]) -> Claim:
    where = f"claims[{i}]"
    if not isinstance(d, Mapping):
        raise ctx.fail(where, f"must be a mapping, got {d!r}")
    cid = _req(ctx, d, "id", where, str)
    where = f"claims[{i}] ({cid})"
    _unknown_keys(ctx, d, {"id", "text", "source", "treatment", "baseline", "metrics", "direction", "paper",
                           "central"}, where)
    for k in ("treatment", "baseline"):
        r = _req(ctx, d, k, where, str)
        if r not in rows:
            raise ctx.fail(f"{where}.{k}", f"unknown grid row {r!r}{_suggest(r, rows)}; grid rows: "
                                           f"{', '.join(rows)}")
    if d["treatment"] == d["baseline"]:
        raise ctx.fail(where, "treatment and baseline are the same row")
    metrics = _req(ctx, d, "metrics", where, list)
    for j, m in enumerate(metrics):
        _check_metric(ctx, f"{where}.metrics[{j}]", m, derived)
    direction = _req(ctx, d, "direction", where, str, default="greater")
    if direction not in DIRECTIONS:
        raise ctx.fail(f"{where}.direction", f"must be one of {DIRECTIONS}, got {direction!r}")
    paper = _req(ctx, d, "paper", where, dict, default={}, nonempty=False)
    return Claim(cid, _req(ctx, d, "text", where, str), _req(ctx, d, "source", where, str), d["treatment"],
                 d["baseline"], tuple(metrics), direction, dict(paper),
                 bool(_req(ctx, d, "central", where, bool, default=False)))


def _unique(ctx: _Ctx, ids, what: str) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise ctx.fail(what, f"id {i!r} is used twice")
        seen.add(i)


TOP_KEYS = {"key", "chapter", "title", "citation", "text_available", "reconstructed", "scale_note", "paper_tables",
            "grid", "our_tables", "claims", "derived_metrics", "paper_config", "paper_overrides"}


def parse_spec(data: Any, source: str = "<spec>", *, check_configs: bool = True) -> PaperSpec:
    """Validate a spec already read from YAML; ``source`` names it in errors. ``check_configs`` also builds each
    row's config from the recipe (:func:`fr.config.load_config`), which checks every override key."""
    ctx = _Ctx(source)
    if not isinstance(data, Mapping):
        raise ctx.fail("top level", f"must be a mapping, got {type(data).__name__}")
    _unknown_keys(ctx, data, TOP_KEYS, "")
    key = _req(ctx, data, "key", "", str)
    ctx.source = f"{source} (key {key})" if not source.endswith(f"{key}.yaml") else source
    text_available = _req(ctx, data, "text_available", "", str)
    if text_available not in TEXT_AVAILABLE:
        raise ctx.fail("text_available", f"must be one of {TEXT_AVAILABLE}, got {text_available!r}")
    tables = [_paper_table(ctx, t, i) for i, t in enumerate(_req(ctx, data, "paper_tables", "", list))]
    _unique(ctx, [t.id for t in tables], "paper_tables")
    grid = _grid(ctx, _req(ctx, data, "grid", "", dict), check_configs=check_configs)
    derived, labels = _derived(ctx, data.get("derived_metrics"))
    by_id = {t.id: t for t in tables}
    ours = [_our_table(ctx, t, i, by_id, grid.rows, derived)
            for i, t in enumerate(_req(ctx, data, "our_tables", "", list, default=[], nonempty=False))]
    _unique(ctx, [t.id for t in ours], "our_tables")
    claims = [_claim(ctx, c, i, grid.rows, derived)
              for i, c in enumerate(_req(ctx, data, "claims", "", list, default=[], nonempty=False))]
    _unique(ctx, [c.id for c in claims], "claims")
    paper_config = _req(ctx, data, "paper_config", "", str, default=None)
    paper_overrides = _req(ctx, data, "paper_overrides", "", dict, default={}, nonempty=False)
    if paper_overrides and paper_config is None:
        raise ctx.fail("paper_overrides", "apply to paper_config, which is not given")
    if paper_config is not None and check_configs:
        from ..config import load_config
        from ..paths import repo_root

        path = repo_root() / paper_config
        if not path.exists():
            raise ctx.fail("paper_config", f"no config file {path}")
        for rid, row in grid.rows.items():
            try:
                load_config(path, {**row.overrides, **paper_overrides})
            except (ValueError, TypeError, KeyError) as e:
                raise ctx.fail("paper_overrides", f"row {rid} is not a valid config with {paper_config}: "
                                                  f"{e}") from None
    spec = PaperSpec(key=key, chapter=_req(ctx, data, "chapter", "", str), title=_req(ctx, data, "title", "", str),
                     citation=_req(ctx, data, "citation", "", str), text_available=text_available,
                     reconstructed=_req(ctx, data, "reconstructed", "", bool),
                     scale_note=_req(ctx, data, "scale_note", "", str), paper_tables=tuple(tables), grid=grid,
                     our_tables=tuple(ours), claims=tuple(claims), derived_metrics=derived, derived_labels=labels,
                     paper_config=paper_config, paper_overrides=dict(paper_overrides), source=ctx.source)
    short = spec.cut_rows()
    if short and not grid.budget.strip():
        raise ctx.fail("grid.budget", f"rows {list(short)} get fewer seeds than the design asks (their own seeds); "
                                      f"grid.budget must say what was cut and why")
    return spec


def spec_path(key: str) -> Path:
    return PAPERS_DIR / f"{key}.yaml"


def spec_keys() -> list[str]:
    """The keys of the spec files present, in the book's reading order (then any others, sorted)."""
    present = {p.stem for p in PAPERS_DIR.glob("*.yaml")}
    return [k for k in KEYS if k in present] + sorted(present - set(KEYS))


def load_spec(key_or_path: str | Path, *, check_configs: bool = True) -> PaperSpec:
    """Read and validate ``fr/papers/<key>.yaml`` (or a YAML path). The key inside must match the file name."""
    p = Path(key_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = spec_path(str(key_or_path))
        if not p.exists():
            raise FileNotFoundError(f"no paper spec {p}; specs present: {', '.join(spec_keys()) or '(none)'}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from None
    try:
        source = str(p.relative_to(PAPERS_DIR.parents[1]))
    except ValueError:
        source = str(p)
    spec = parse_spec(data, source, check_configs=check_configs)
    if spec.key != p.stem:
        raise SpecError(f"{source}: key {spec.key!r} does not match the file name {p.name!r}")
    return spec
