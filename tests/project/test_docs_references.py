"""Docs pointers stay true: no tracked file cites the old out-of-repo notes, and every
``docs/references.md#<anchor>`` / ``docs/architecture.md#<anchor>`` pointer names a heading of that file."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import ROOT
# spelled in pieces so that this file does not match its own check
OLD_NOTES = ("REFERENCES" + ".md", "ARCHITECTURE" + ".md")
POINTER = re.compile(r"docs/(references|architecture)\.md#([A-Za-z0-9_-]+)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [ROOT / name for name in out.decode().split("\0") if name]
    return [p for p in paths if p.is_file()]


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:  # binary (images, ...)
        return None
    return data.decode("utf-8", errors="replace")


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation except '-' and '_' dropped, spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Anchors of every heading (outside code fences), with GitHub's -1, -2 ... suffixes for repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = github_anchor(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_github_anchor_rules():
    assert github_anchor("Atari100k protocol") == "atari100k-protocol"
    assert github_anchor("Kernels (`ssmrl/kernels`)") == "kernels-ssmrlkernels"
    assert github_anchor("Conventions every part follows") == "conventions-every-part-follows"
    assert anchors("# A\n## B c\n```\n# not a heading\n```\n## B c\n") == {"a", "b-c", "b-c-1"}


def test_no_tracked_file_cites_the_old_notes():
    offenders = []
    for path in _tracked_files():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(name in line for name in OLD_NOTES):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "cite docs/references.md#<section> or docs/architecture.md#<section> instead:\n" + "\n".join(
        offenders)


def test_every_docs_pointer_names_an_existing_heading():
    targets = {name: anchors((ROOT / "docs" / f"{name}.md").read_text()) for name in ("references", "architecture")}
    pointers, broken = 0, []
    for path in _tracked_files():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in POINTER.finditer(line):
                pointers += 1
                doc, anchor = match.groups()
                if anchor not in targets[doc]:
                    broken.append(f"{path.relative_to(ROOT)}:{number}: docs/{doc}.md#{anchor}")
    assert pointers >= 15, f"expected the code to point at docs sections, found {pointers} pointers"
    assert not broken, "pointers to missing headings:\n" + "\n".join(broken)
