"""The documentation: README.md stays a front page, and every link in it and in docs/ resolves.

A link ``[text](target)`` whose target has no scheme is checked: its file must exist (relative to
the file that holds the link) and its ``#anchor`` must be a heading of the target file, slugged as
GitHub does (lowercase; punctuation other than ``-`` and ``_`` dropped; spaces become ``-``;
a repeated heading gets ``-1``, ``-2``, ...). Code spans and fenced code blocks are not read.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 16 * 1024  # bytes: longer text goes into a file of docs/
LINK = re.compile(r"\[[^\]]*\]\(([^()\s]*)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with code spans blanked."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"(`+).*?\1", "", line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (code blocks left out; code spans kept as text)."""
    found, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """``file:line: target (why)`` for every relative link of ``path`` that does not resolve."""
    broken = []
    for number, line in prose(path.read_text()):
        for target in LINK.findall(line):
            if not target or SCHEME.match(target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}"
            if not linked.exists():
                broken.append(f"{where}: {target} (no such file)")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                broken.append(f"{where}: {target} (no heading #{anchor} in {linked.name})")
    return broken


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(path):
    broken = broken_links(path)
    assert not broken, "links that do not resolve:\n" + "\n".join(broken)


def test_readme_is_a_front_page():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, (
        f"README.md is {size} bytes, over {README_LIMIT}: move text into a file of docs/"
    )


def test_readme_links_every_docs_file():
    readme = "\n".join(line for _, line in prose((ROOT / "README.md").read_text()))
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}
    unlinked = [p.name for p in documents()[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs/ files the README does not link: {unlinked}"


def test_slugs_follow_github():
    assert slug("The paper profile, from `git clone` to Table 1") == (
        "the-paper-profile-from-git-clone-to-table-1"
    )
    assert slug("The prompt layer's learning rate") == "the-prompt-layers-learning-rate"
    assert slug("What appears in `results/`") == "what-appears-in-results"
    assert slug("Scaling out: several GPUs per run (DDP)") == (
        "scaling-out-several-gpus-per-run-ddp"
    )
    assert slug("prompt_functions and --cores") == "prompt_functions-and---cores"


def test_a_broken_link_or_anchor_is_reported(tmp_path):
    (tmp_path / "a.md").write_text(
        "# A title\n\n## Twice\n\n## Twice\n\n"
        "[ok](#a-title) [ok](b.md#b) [ok](#twice-1) [ok](https://example.org/x#y)\n"
        "`[code](missing.md)` [missing file](missing.md) [missing anchor](b.md#nope)\n"
        "```\n[in a fence](missing.md)\n```\n"
    )
    (tmp_path / "b.md").write_text("# B\n")
    broken = broken_links(tmp_path / "a.md")
    assert len(broken) == 2, broken
    assert "missing.md (no such file)" in broken[0]
    assert "b.md#nope (no heading #nope in b.md)" in broken[1]


# A pointer from code or configuration to a section: (docs/<file>.md, "<heading>"); a heading
# broken over two string literals is matched by its start.
SECTION_POINTER = re.compile(r"docs/([\w-]+\.md), [\"']([^\"'\n]+)")


def test_every_pointer_from_code_to_a_docs_section_names_a_heading_that_exists():
    found = []
    for folder in ("vmp", "rules", "config", "notebooks", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".smk", ".yaml") or not path.is_file():
                continue
            for target, heading in SECTION_POINTER.findall(path.read_text()):
                found.append((path.relative_to(ROOT), target, heading.strip()))
    assert len(found) >= 4  # the error messages and configuration comments that point at docs
    for path, target, heading in found:
        headings = [
            m.group(1)
            for line in (ROOT / "docs" / target).read_text().splitlines()
            if (m := HEADING.match(line))
        ]
        assert any(h.startswith(heading) for h in headings), f"{path}: no '{heading}' in {target}"
    # and no pointer still names the README, whose sections moved into docs/
    for folder in ("vmp", "rules", "config", "notebooks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".smk", ".yaml") and path.is_file():
                assert not re.search(r"\(README[,\"' ]", path.read_text()), path
