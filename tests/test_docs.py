"""The documentation stands alone and holds together: the README stays short, every relative link
and anchor in the Markdown resolves inside the repository, nothing points at files outside it, and
every case cites a public post."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from failbench.discovery import case_names, load_case

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 160  # the case table grows a row a case
# Names of files that live outside the repository, which nothing in it may point at. Built in
# pieces, so that this file does not contain them itself.
OUTSIDE = ("shared" + "/seeds", "DESIGN" + ".md", "STYLE" + ".md")
# Where a case's post is published: the sites its citation must name (the journal by its title).
# A post names where it is public: a site's domain (stats.stackexchange.com, testpy.hatenablog.com),
# or the journal it appeared in
PUBLIC_SOURCE = re.compile(r"\b[a-z0-9-]+(\.[a-z0-9-]+)*\.(com|org|net|io|jp)\b|Class Project Journal")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def tracked(pattern: str = "") -> list[Path]:
    """The repository's tracked files (git ls-files), or every file outside .git and .venv when
    this is not a git checkout (an unpacked release)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", *([pattern] if pattern else [])],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        return [ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "mlruns", "node_modules"}
        files = [p for p in ROOT.rglob(pattern or "*") if p.is_file()]
        return [p for p in files if not skip & set(p.relative_to(ROOT).parts)]


def prose(markdown: str) -> str:
    """The Markdown without fenced code blocks and code spans, where brackets are code, not links."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links, code and emphasis marks dropped), lowercase,
    every character but letters, digits, '_', '-' and spaces removed, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I)]


def test_slug_follows_github():
    assert slug("A run's identity") == "a-runs-identity"
    assert slug("Is my failure one of these?") == "is-my-failure-one-of-these"
    assert slug("The `failbench compare` command") == "the-failbench-compare-command"
    assert slug("Tracking and MLflow") == "tracking-and-mlflow"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail next to what it describes"


def test_every_relative_link_and_anchor_resolves():
    documents = tracked("*.md")
    assert ROOT / "README.md" in documents
    broken, checked = [], 0
    for doc in documents:
        for link in relative_links(doc):
            checked += 1
            target, _, anchor = link.partition("#")
            path = (doc.parent / target).resolve() if target else doc
            where = f"{doc.relative_to(ROOT)}: ({link})"
            if not path.is_file():
                broken.append(f"{where} -> no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{where} -> no heading #{anchor} in {path.relative_to(ROOT)}")
    assert checked > 10, "found almost no links: the link pattern is broken"
    assert not broken, "broken Markdown links:\n" + "\n".join(broken)


def test_nothing_points_outside_the_repository():
    reference = ROOT / "reports" / "reference"
    offending = []
    for path in tracked():
        if path.parent == reference and path.suffix == ".json":
            continue
        data = path.read_bytes()
        if b"\0" in data:  # a binary file (a picture)
            continue
        text = data.decode("utf-8", errors="replace")
        offending += [f"{path.relative_to(ROOT)}: {name}" for name in OUTSIDE if name in text]
    assert not offending, "files outside the repository are referred to:\n" + "\n".join(offending)


@pytest.mark.parametrize("name", case_names())
def test_each_case_cites_a_public_post(name):
    post = load_case(name).post
    assert PUBLIC_SOURCE.search(post), f"{name}: {post!r} names no public source"
    assert not post.endswith(".txt"), f"{name}: the post is cited by a file name, not by where it is public"
    question = re.search(r"stats\.stackexchange\.com\) question (\d+)", post)
    if question:  # a Cross Validated question is cited with the address its id gives
        assert f"https://stats.stackexchange.com/q/{question.group(1)}" in post
