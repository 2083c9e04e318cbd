"""The built book, opened page by page in headless Chromium with the network cut off.

For every page of ``_build/html`` (built by ``make book``, which ``.ci/run`` runs before the tests): it loads;
every image it shows is a non-empty file that decodes; no script or stylesheet comes from another host; its math
is typeset by the MathJax shipped with the book (no raw ``\\(``, ``\\[``, ``$$`` or ``$\\cmd$`` left in the
rendered text);
it shows no Python traceback; and on executed chapters every code cell is folded behind a toggle. A screenshot of
the SMAFace chapter (of the front page while that chapter is not built) is saved under ``results/book/``.

Chromium runs with every host name resolving to nothing and a proxy on a closed local port, so anything the
pages would fetch from a CDN fails to load. The test skips, saying why, when Chromium or the built book is absent.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build" / "html"
SHOTS = ROOT / "results" / "book"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; "
                                                ".ci/run installs it)"),
    pytest.mark.skipif(not (BUILD / "index.html").exists(), reason="the book is not built: run `make book` first"),
]

OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
#: virtual milliseconds a page gets to run its scripts (MathJax typesets in well under a second)
BUDGET_MS = 20_000
#: elements whose text is code or machinery, not what the page says
NOT_PROSE = {"script", "style", "pre", "code", "textarea", "noscript", "mjx-assistive-mml", "template"}
#: TeX left as typed: \( \[ $$ delimiters, or a $...$ span holding a command such as \cos
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")


def _pages() -> list[Path]:
    skip = {"_static", "_sources", "_images", ".doctrees"}
    return sorted(p for p in BUILD.rglob("*.html") if not skip & set(p.relative_to(BUILD).parts))


def _chromium(args: list[str], profile: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *OFFLINE, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """page -> (Chromium's exit code, its DOM after the page's scripts ran, stderr), two pages at a time."""
    bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 (the test extra) is not installed")
    pages = _pages()
    assert len(pages) > 3, f"only {len(pages)} pages under {BUILD}"

    def render(page: Path):
        profile = tmp_path_factory.mktemp("profile")
        out = _chromium([f"--virtual-time-budget={BUDGET_MS}", "--dump-dom", page.as_uri()], profile)
        return page, out.returncode, bs4.BeautifulSoup(out.stdout, "html.parser"), out.stderr

    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return {p: (rc, dom, err) for p, rc, dom, err in pool.map(render, pages)}


def _name(page: Path) -> str:
    return str(page.relative_to(BUILD))


def _prose(el) -> str:
    """The text a reader sees, code and machinery left out."""
    from bs4 import NavigableString

    parts = []
    for s in el.find_all(string=True):
        if not isinstance(s, NavigableString) or type(s).__name__ in ("Comment", "Doctype", "Declaration"):
            continue
        if any(p.name in NOT_PROSE for p in s.parents):
            continue
        parts.append(str(s))
    return " ".join(parts)


def test_every_page_loads(rendered):
    bad = []
    for page, (rc, dom, err) in rendered.items():
        title = dom.title.get_text(strip=True) if dom.title else ""
        main = dom.find("main")
        if rc != 0 or main is None or not main.get_text(strip=True) or not title:
            bad.append(f"{_name(page)}: exit {rc}, title {title!r}, stderr tail: {err[-300:]!r}")
    assert not bad, "pages that did not load:\n" + "\n".join(bad)


def test_every_image_exists_and_is_not_empty(rendered):
    from PIL import Image

    bad, seen = [], 0
    for page, (_, dom, _) in rendered.items():
        for img in dom.find_all("img"):
            src = img.get("src", "")
            seen += 1
            if src.startswith("data:"):
                if len(src.partition(",")[2]) < 16:
                    bad.append(f"{_name(page)}: empty inline image")
                continue
            url = urlparse(src)
            if url.scheme not in ("", "file"):
                bad.append(f"{_name(page)}: image from the network: {src}")
                continue
            path = Path(unquote(url.path)) if url.scheme == "file" else (page.parent / unquote(url.path)).resolve()
            if not path.is_file() or path.stat().st_size == 0:
                bad.append(f"{_name(page)}: missing or empty image {src} ({path})")
            elif path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".webp"):
                with Image.open(path) as im:
                    if min(im.size) < 1:
                        bad.append(f"{_name(page)}: image {src} has size {im.size}")
    assert not bad, "\n".join(bad)
    assert seen, "no page shows an image: the executed chapters' figures are missing"


def test_nothing_is_fetched_from_another_host(rendered):
    bad = []
    for page, (_, dom, _) in rendered.items():
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
            for el in dom.find_all(tag):
                ref = el.get(attr) or ""
                if tag == "link" and not {"stylesheet", "preload", "icon"} & set(el.get("rel") or []):
                    continue
                if re.match(r"^(https?:)?//", ref):
                    bad.append(f"{_name(page)}: <{tag} {attr}={ref}>")
    assert not bad, "resources from the network (the book must work offline):\n" + "\n".join(sorted(set(bad)))


def test_math_is_typeset_offline(rendered):
    bad, typeset = [], 0
    for page, (_, dom, _) in rendered.items():
        raw = RAW_TEX.findall(_prose(dom.body or dom))
        if raw:
            i = _prose(dom.body or dom).find(raw[0])
            bad.append(f"{_name(page)}: raw TeX {raw[0]!r} in the text: "
                       f"...{_prose(dom.body or dom)[max(0, i - 60):i + 60]!r}")
        for el in dom.select(".math"):
            if el.find("mjx-container") is None:
                bad.append(f"{_name(page)}: math not typeset: {el.get_text()[:80]!r}")
            else:
                typeset += 1
    assert not bad, "\n".join(bad[:30])
    heads = [p for p in rendered if p.parent.name == "heads" and p.stem != "index"]
    assert heads and all(rendered[p][1].find("mjx-container") for p in heads), \
        "every head page shows its equation, typeset"
    assert typeset >= len(heads)


def test_no_page_shows_a_traceback(rendered):
    bad = []
    for page, (_, dom, _) in rendered.items():
        for el in dom.select(".cell_input, .cell .highlight-ipython3"):
            el.decompose()  # a cell's own code may mention the word; its outputs may not
        if dom.select(".traceback, .output.error") or "Traceback (most recent call last)" in dom.get_text():
            bad.append(_name(page))
    assert not bad, "pages showing a Python traceback: " + ", ".join(bad)


def test_executed_chapters_fold_their_code(rendered):
    chapters = [p for p in rendered if p.parent.name == "executed"]
    assert chapters, "no executed chapter in the build"
    bad = []
    for page in chapters:
        dom = rendered[page][1]
        for cell in dom.select("div.cell"):
            classes = set(cell.get("class", []))
            if cell.select_one(".cell_input") is not None and not {"tag_hide-input", "tag_hide-cell"} & classes:
                bad.append(f"{_name(page)}: a code cell shown unfolded: {cell.get_text()[:60]!r}")
    assert not bad, "\n".join(bad[:20])


def test_screenshot_of_the_smaface_chapter(tmp_path):
    page = BUILD / "book" / "executed" / "03_smaface_ablation.html"
    if not page.exists():
        page = BUILD / "book" / "intro.html"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{page.stem}.png"
    shot.unlink(missing_ok=True)
    out = _chromium([f"--virtual-time-budget={BUDGET_MS}", "--window-size=1280,1800", "--hide-scrollbars",
                     f"--screenshot={shot}", page.as_uri()], tmp_path / "profile")
    assert out.returncode == 0 and shot.is_file(), out.stderr[-500:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 1800)
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 64, "the screenshot is blank"
