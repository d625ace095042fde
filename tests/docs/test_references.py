"""Every document reference in the repository resolves (issue 14).

The repository must stand on its own: a reader follows a link, a path or a
``§`` reference and finds what it names. Checked in the docs (README, ``docs/``,
``bench/``), the config comments, the Dockerfile, the deploy files and the code:

- Markdown links to files of the repository, and their ``#anchors`` (GitHub's
  heading slugs);
- repository paths written in the text (``docs/auth.md``, ``gateway/server/``);
- a ``§N`` of the contract must say where it is (``docs/contract.md §N``, or in
  Markdown a link to ``contract.md``) and be a numbered section there; ``§ name``
  after ``upstreams.md`` must be a section of ``docs/upstreams.md``; a bare
  ``§N`` in a Markdown file must be a numbered section of that file
  (``RFC 9110 §7.6.1`` and other outside specs are not the repository's);
- a section named in quotes beside its document (``docs/operations.md``,
  "Timeouts"; "Links" in the README) is a heading or a bold paragraph there;
- nothing points outside the repository (``shared/...``).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
TOP = ("docs", "gateway", "deploy", "tests", "bench", "config")


def _files() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "Dockerfile", ROOT / "Makefile", ROOT / "pyproject.toml"]
    for top in ("docs", "bench", "config", "deploy", "gateway", "tests"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".md", ".py", ".yaml", ".yml", ".json", ".lua", ".toml"):
                if (
                    "__pycache__" not in path.parts
                    and "fixtures" not in path.parts
                    and path.name != "test_references.py"
                ):
                    found.append(path)
    return found


FILES = _files()
MARKDOWN = [p for p in FILES if p.suffix == ".md"]
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")
_FENCE = re.compile(r"^\s*```")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def headings(path: Path) -> tuple[str, ...]:
    out, fenced = [], False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            out.append(match.group(2))
    return tuple(out)


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(path):
        slug = _slug(heading)
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return frozenset(out)


def numbered_sections(path: Path) -> set[str]:
    return {m.group(1) for h in headings(path) if (m := re.match(r"(\d+)\.\s", h))}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_markdown_links_and_anchors_resolve() -> None:
    broken = []
    for doc in MARKDOWN:
        for target in _LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            if not dest.exists():
                broken.append(f"{_rel(doc)}: link to missing {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{_rel(doc)}: no heading #{anchor} in {_rel(dest)}")
    assert not broken, "\n".join(broken)


_PATH = re.compile(r"(?<![\w/.:@$-])((?:" + "|".join(TOP) + r")/[\w./-]*)")


def test_repository_paths_in_the_text_exist() -> None:
    missing = []
    for path in FILES:
        if path.is_relative_to(ROOT / "tests"):
            continue  # tests name the temporary files they write
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in _PATH.finditer(line):
                if line[match.end() : match.end() + 1] in ("<", "*", "{"):
                    continue  # a pattern: gateway/upstreams/<name>.py
                name = match.group(1).rstrip(".,:;-")
                if not (ROOT / name).exists():
                    missing.append(f"{_rel(path)}:{number}: {name}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


_CONTRACT = re.compile(r"contract(\.md)?`?\s*((?:§\s*\d+(?:\s*(?:,|and|-|–)\s*)?)+)", re.I)
_LINKED = re.compile(r"\]\((?:\.\./)?(?:docs/)?contract\.md[#)]")
_UPSTREAMS = re.compile(r"upstreams\.md`*,?\s*§\s*([a-z]+)")
_OUTSIDE = re.compile(r"(RFC\s*\d+|draft\b|\bissue\b)[^§]{0,40}$", re.I)


def test_section_references_name_sections_that_exist() -> None:
    contract = ROOT / "docs" / "contract.md"
    upstreams = {h.split(":")[0].strip() for h in headings(ROOT / "docs" / "upstreams.md")}
    sections = numbered_sections(contract)
    bad = []
    for path in FILES:
        text = path.read_text()
        for match in _CONTRACT.finditer(text):
            if not match.group(1) and not _LINKED.match(text, match.end()):
                bad.append(f"{_rel(path)}: {match.group(0)!r} does not say it is docs/contract.md")
            for number in re.findall(r"§\s*(\d+)", match.group(2)):
                if number not in sections:
                    bad.append(f"{_rel(path)}: contract §{number} (sections: {sorted(sections)})")
        for name in _UPSTREAMS.findall(text):
            if name not in upstreams:
                bad.append(f"{_rel(path)}: upstreams.md § {name}")
        if path.suffix != ".md":
            continue
        own = numbered_sections(path)
        for number, line in enumerate(text.splitlines(), 1):
            for match in re.finditer(r"§\s*(\d+)", line):
                before = line[: match.start()]
                if _OUTSIDE.search(before) or re.search(r"contract(\.md)?`?\s*[\[(]?$", before):
                    continue
                if re.search(r"contract[^§]{0,20}$", before, re.I) or _LINKED.match(
                    line, match.end()
                ):
                    continue  # the contract's, checked above, or a link to it
                if match.group(1) not in own:
                    bad.append(f"{_rel(path)}:{number}: §{match.group(1)} is not a section here")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("needle", ["shared/", "../shared"])
def test_nothing_points_outside_the_repository(needle: str) -> None:
    found = [
        f"{_rel(p)}:{n}"
        for p in FILES
        if p != Path(__file__)
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if needle in line
    ]
    assert not found, f"references to {needle}: {found}"


def test_the_contract_has_its_five_numbered_sections() -> None:
    assert numbered_sections(ROOT / "docs" / "contract.md") == {"1", "2", "3", "4", "5"}
    assert {"bizzstream", "beeswax", "buzzstream", "streamone"} <= {
        h.split(":")[0] for h in headings(ROOT / "docs" / "upstreams.md")
    }


def test_slugs_follow_github() -> None:
    assert _slug("3. Errors: one schema") == "3-errors-one-schema"
    assert _slug("Per-user credentials (`X-Gateway-User`)") == "per-user-credentials-x-gateway-user"


# A section named in quotes next to its file: `docs/operations.md`, "Timeouts";
# "Compressed replies" in `docs/errors.md`; (README, "Links").
_QUOTED = re.compile(
    r"(?P<f1>README|[\w/]+\.md)`?,?\s+\"(?P<s1>[A-Z][^\"\n]{1,40})\""
    r"|\"(?P<s2>[A-Z][^\"\n]{1,40})\"\s+(?:in|of)\s+`?(?P<f2>README|[\w/]+\.md)"
)


def _named_doc(name: str) -> Path | None:
    if name == "README":
        return ROOT / "README.md"
    for candidate in (ROOT / name, ROOT / "docs" / Path(name).name):
        if candidate.exists():
            return candidate
    return None


def test_quoted_section_names_exist() -> None:
    bad = []
    for path in FILES:
        for match in _QUOTED.finditer(path.read_text()):
            doc = _named_doc(match.group("f1") or match.group("f2"))
            section = match.group("s1") or match.group("s2")
            if doc is None:
                bad.append(f"{_rel(path)}: {match.group(0)!r}: no such document")
                continue
            text = doc.read_text()
            if not any(h.strip("`").startswith(section) for h in headings(doc)) and (
                f"**{section}.**" not in text and f"**{section}**" not in text
            ):
                bad.append(f"{_rel(path)}: {match.group(0)!r}: no such section in {_rel(doc)}")
    assert not bad, "\n".join(bad)
