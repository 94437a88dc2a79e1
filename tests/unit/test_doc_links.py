"""Every link between the README and the guides in docs/ leads somewhere: a relative link names a
file of the repository, and its `#fragment` a heading of that file, as GitHub spells anchors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target), outside code: the target has no spaces.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^ *```.*?^ *```", re.DOTALL | re.MULTILINE)
CODE = re.compile(r"`[^`\n]*`")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE.sub(lambda m: m[0].strip("`"), heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {anchor(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def links(path: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", path.read_text()))
    return [m[1] for m in LINK.finditer(text)]


def test_github_anchors_are_spelled_as_github_does():
    assert anchor("No lost updates: ETags and conditional requests") == (
        "no-lost-updates-etags-and-conditional-requests")
    assert anchor("Interactive docs at /docs") == "interactive-docs-at-docs"
    assert anchor("What `make test` enforces") == "what-make-test-enforces"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_names_a_file_and_a_heading_that_exist(document):
    broken = []
    for target in links(document):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not this test's business
            continue
        file, _, fragment = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: no heading #{fragment} in {path.relative_to(REPO)}")
    assert not broken, broken


def test_the_readme_leads_to_every_guide():
    targets = {target.partition("#")[0] for target in links(REPO / "README.md")}
    for guide in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{guide.name}" in targets, guide.name


def test_the_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#missing) `[code](#ignored)`\n")
    assert links(page) == ["#title", "#missing"]
    assert anchors(page) == {"title"}
