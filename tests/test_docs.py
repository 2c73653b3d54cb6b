"""The README and the pages under docs/: generated pages equal what tests/readme.py produces now,
every relative link resolves inside the repository, nothing names a file outside it, and the
README's quick start is what CI runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import kill_matrix, readme

ROOT = readme.ROOT
README = ROOT / "README.md"
PAGES = [README, *sorted(readme.DOCS.glob("*.md"))]
STALE = "is stale: regenerate it with `python -m tests.readme`"


def _page(path: Path) -> str:
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: python -m tests.readme"
    return path.read_text()


def test_catalogue_page_is_current():
    """docs/catalogue.md is the catalogue's table as the generator writes it now."""
    assert _page(readme.CATALOGUE_PAGE) == readme.catalogue_page(), f"docs/catalogue.md {STALE}"


def test_findings_page_is_current():
    """docs/findings.md is the kit's shipped findings as the generator writes them now, one row
    per finding of every shipped file."""
    from conformance.findings import load, shipped

    assert _page(readme.FINDINGS_PAGE) == readme.findings_page(), f"docs/findings.md {STALE}"
    names = [f.name for path in shipped() for f in load(path)]
    assert names and all(f"| `{n}` |" in readme.findings_page() for n in names)


def test_matrix_page_is_current():
    """docs/matrix.md is `matrix --markdown` over docs/matrix as the generator writes it now;
    the kept reports cover at least three torchrl releases (0.14 with the AsyncEnvPool
    subjects), tensordict 0.15 and a nightly build, the nightly last."""
    assert _page(readme.MATRIX_PAGE) == readme.matrix_page(), f"docs/matrix.md {STALE}"
    reports = [json.loads(p.read_text()) for p in readme.matrix_reports()]
    assert len({r["versions"]["torchrl"] for r in reports}) >= 3
    on014 = {s for r in reports if r["versions"]["torchrl"] == "0.14.1" for s in r["subjects"]}
    assert {"torchrl-async-threading", "torchrl-async-mp"} <= on014
    assert any(r["versions"]["tensordict"].startswith("0.15.") for r in reports)
    assert "tensordict-nightly" in reports[-1]["versions"]


def test_configs_page_is_current():
    """docs/configs.md is the generator's page over the reports in docs/configs; every
    configuration names a subject option its factory accepts."""
    from conformance.subject import resolve, split_name
    from tests import configs

    assert _page(readme.CONFIGS_PAGE) == readme.configs_page(), f"docs/configs.md {STALE}"
    for name in configs.CONFIGS:
        assert split_name(name)[1] and resolve(name).name == name


def test_kill_matrix_page_lists_every_mutant():
    """docs/kill-matrix.md is the generator's page around a table with one row per mutant, in
    discovery order (that the table is what a run of the mutants produces is asserted by
    tests/test_kill_matrix.py, which runs them)."""
    text = _page(readme.KILL_MATRIX_PAGE)
    table = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    assert text == readme.kill_matrix_page(table), (
        "docs/kill-matrix.md is stale: python -m tests.readme --kill-matrix")
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines()[2:]]
    assert rows == [target.partition(":")[2] for target in kill_matrix.discover()], (
        "docs/kill-matrix.md is stale (mutants added or removed): "
        "python -m tests.readme --kill-matrix")


def _unfenced(text: str) -> str:
    """Markdown without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _prose(text: str) -> str:
    """Markdown without code blocks and inline code (links there are not links)."""
    return re.sub(r"`[^`\n]*`", "", _unfenced(text))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for a markdown file's headings."""
    slugs = set()
    for line in _unfenced(path.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return slugs


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path):
    """Every relative link in the README and docs/ names a file in the repository (and, with
    #anchor, a heading of that file)."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.is_file() or not path.is_relative_to(ROOT):
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


# Files outside the repository that its text used to name.
OUTSIDE = ("FACTS.md", "DESIGN.md", "STYLE.md", "../shared")
# Where one is still named: the version matrix's recorded reports, which hold a shipped
# deviation's earlier reason (until they are recorded again).  Remove an entry once its file no
# longer names one; a file not listed here must never name one.
NOT_YET = {
    "docs/matrix/torchrl010.json",
    "docs/matrix/torchrl012.json",
}
SKIP_DIRS = {".git", ".tox", ".hypothesis", ".pytest_cache", ".ruff_cache", "__pycache__", "build",
             "dist", "reports"}


def _repo_text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(p in SKIP_DIRS or p.startswith(".venv") or p.endswith(".egg-info") for p in parts):
            continue
        if path.is_file() and path.suffix not in {".pyc", ".so", ".png", ".npz", ".pt"}:
            files.append(path)
    return files


def test_nothing_names_a_file_outside_the_repository():
    """No file of the repository (code, docs, data) names one of the files outside it."""
    this = Path(__file__).resolve()
    naming = set()
    for path in _repo_text_files():
        if path.resolve() == this:
            continue
        text = path.read_text(errors="replace")
        if any(name in text for name in OUTSIDE):
            naming.add(str(path.relative_to(ROOT)))
    assert naming <= NOT_YET, f"files naming {OUTSIDE}: {sorted(naming - NOT_YET)}"


def test_readme_is_a_front_door():
    """The README stays short, embeds no generated section, and shows a failure."""
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "README.md over 250 lines: move detail under docs/"
    assert "<!--" not in text, "README.md embeds a generated section: generate a docs/ page"
    assert "Likely fix:" in text and "python repro.py" in text


def test_readme_quick_start_is_what_ci_runs():
    """The quick start's install and test commands are the ones .ci/run runs."""
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no ## Quick start bash block"
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in block.group(1).splitlines() if not line.startswith("#")]
    assert commands[-1] == "python -m pytest -n auto" and commands[-1] in ci.splitlines()
    install = "pip install -c constraints/ci.txt -e '.[dmcontrol,test]'"
    # (CI adds -q, and --no-compile: its run imports a fraction of what pip would byte-compile)
    assert install.replace("install", "install -q --no-compile") in ci and install in commands[0]
    assert "python -m conformance check" in commands[0]
