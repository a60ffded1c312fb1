"""The documentation holds together: README stays a short front door, every relative link in
README.md and docs/ reaches a file (and a heading, where it names one), the repository stands
alone, and the ``make`` targets README names exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def prose(path: Path) -> str:
    """The Markdown without its code blocks, where brackets are code, not links."""
    return FENCE.sub("", path.read_text("utf-8"))


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", prose(path), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n, candidate = 0, slug
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path)) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_readme_fits_on_a_few_screens() -> None:
    assert len(README.read_text("utf-8").splitlines()) <= 300


def test_the_docs_exist_and_readme_links_each_one() -> None:
    targets = {(README.parent / t.split("#")[0]).resolve() for t in relative_links(README)}
    for page in ("architecture.md", "api.md", "operations.md", "models.md",
                 "benchmarks/README.md"):
        assert (ROOT / "docs" / page).resolve() in targets, f"README does not link docs/{page}"


def test_every_benchmark_page_is_one_link_from_the_index() -> None:
    index = ROOT / "docs" / "benchmarks" / "README.md"
    linked = {(index.parent / t.split("#")[0]).resolve() for t in relative_links(index)}
    for page in index.parent.glob("*.md"):
        assert page == index or page.resolve() in linked, f"{page.name} is not in the index"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def test_the_repository_stands_alone() -> None:
    outside = ".." + "/shared"  # spelt apart so this file does not match itself
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    offenders = []
    for name in filter(None, tracked):
        path = ROOT / name
        if path.is_file() and outside in path.read_text("utf-8", errors="replace"):
            offenders.append(name)
    assert not offenders, f"these files point outside the repository: {offenders}"


def test_make_targets_named_in_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text("utf-8")
    defined = set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", makefile, flags=re.M))
    named = set(re.findall(r"\bmake +([a-z][a-z0-9-]*)", README.read_text("utf-8")))
    assert {"run", "test"} <= named
    assert not named - defined, f"README names make targets the Makefile lacks: {named - defined}"


def test_every_route_is_in_the_api_summary() -> None:
    """Each served operation is a row of README's table; the Mem0 routes that answer 501 are
    rows of docs/api.md's list."""
    from gateway.app import create_app
    from gateway.settings import Settings

    schema = create_app(Settings()).openapi()
    readme = README.read_text("utf-8")
    api = (ROOT / "docs" / "api.md").read_text("utf-8")
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            row = f"| {method.upper()} | `{path}` |"
            refused = "not supported" in operation.get("summary", "")
            if row not in (api if refused else readme):
                missing.append(row)
    assert not missing, f"routes missing from the API tables: {missing}"
