"""README.zh-CN.md stays a translation of README.md: the same commands, tables, names and links, so it cannot drift.

What must be equal: every code block (its marker, language and code; comments may be translated), the first column
of every table (settings, routes), and per section (by heading order) the inline code spans and the links. When this
fails after README.md changed, translate the change into README.zh-CN.md.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGLISH = (ROOT / "README.md").read_text(encoding="utf-8")
CHINESE = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:<!-- readme-test: (\w+) -->\n)?```(\w*)\n(.*?)\n```", re.DOTALL)
# A shell or Python comment: `#` at a line's start or after a space, then a space, to the end of the line.
COMMENT = re.compile(r"(?:^|\s+)# .*$", re.MULTILINE)
HEADING = re.compile(r"^#{1,3} ", re.MULTILINE)
TABLE_ROW = re.compile(r"^\| (.+?) \|", re.MULTILINE)
CODE_SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)|https?://[^\s)`'\"]+")


def code_blocks(text: str) -> list[tuple[str, str, str]]:
    """(readme-test marker, language, code without comments) of each fenced block."""
    return [(marker, language, COMMENT.sub("", code)) for marker, language, code in BLOCK.findall(text)]


def code_spans(text: str) -> set[str]:
    """The inline code spans, each single-spaced (a span may wrap across lines)."""
    return {" ".join(span.split()) for span in CODE_SPAN.findall(text)}


def links(text: str) -> set[str]:
    """The addresses linked or written out, other than the two READMEs' links to each other."""
    found = {match[1] or match[0] for match in LINK.finditer(text)}
    return found - {"README.md", "README.zh-CN.md"}


def prose_sections(text: str) -> list[str]:
    """The text between headings, code blocks left out."""
    return HEADING.split(BLOCK.sub("", text))


def test_each_links_to_the_other_at_the_top() -> None:
    assert "[简体中文](README.zh-CN.md)" in "\n".join(ENGLISH.splitlines()[:4])
    assert "[English](README.md)" in "\n".join(CHINESE.splitlines()[:4])


def test_the_code_blocks_are_the_same() -> None:
    english, chinese = code_blocks(ENGLISH), code_blocks(CHINESE)
    assert len(english) == len(chinese), f"README.md has {len(english)} code blocks, README.zh-CN.md {len(chinese)}"
    for number, (en, zh) in enumerate(zip(english, chinese, strict=True), start=1):
        assert en == zh, f"code block {number} differs (translate only its comments):\n{en[2]}\n---\n{zh[2]}"


def test_the_tables_list_the_same_settings_and_routes() -> None:
    english = [row for row in TABLE_ROW.findall(ENGLISH) if not row.startswith("---")]
    chinese = [row for row in TABLE_ROW.findall(CHINESE) if not row.startswith("---")]
    # The header rows are translated; every other first cell is a setting or a route.
    assert [r for r in english if "`" in r] == [r for r in chinese if "`" in r]
    assert len(english) == len(chinese)


def test_each_section_keeps_its_code_and_links() -> None:
    english, chinese = prose_sections(ENGLISH), prose_sections(CHINESE)
    assert len(english) == len(chinese), "the two READMEs have different numbers of sections"
    for en, zh in zip(english, chinese, strict=True):
        title = en.splitlines()[0] if en.strip() else "(top)"
        missing, added = code_spans(en) - code_spans(zh), code_spans(zh) - code_spans(en)
        assert not missing and not added, f"section {title!r}: code spans missing {missing}, added {added}"
        assert links(en) == links(zh), f"section {title!r}: links {links(en) ^ links(zh)} are in only one of them"
