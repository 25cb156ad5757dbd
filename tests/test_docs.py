"""Every Python example in the documentation runs.

One test per page of ``docs/``: the page's ```` ```python ```` blocks run in order in
one namespace (so a later block uses what an earlier one made), in a fresh temporary
directory (so examples may write ``funnel.db`` or CSV files freely). ```` ```pycon ````
blocks (``>>>`` sessions) are checked with doctest in the same namespace. A failure
points at the page and the line of the block in it.

An example that needs a server (PostgreSQL, MariaDB) says so in an HTML comment on the
line before its fence, naming the environment variables it reads; it runs when they are
set, as the CI sets them::

    <!-- docs-test: requires LEADFUNNEL_TEST_POSTGRES_URL -->
"""

from __future__ import annotations

import doctest
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})[ \t]*(?P<info>[^`\n]*)$")
_REQUIRES = re.compile(r"^\s*<!--\s*docs-test:\s*requires\s+(?P<names>[\w\s,]+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # 1-based line of the first line of code in the page
    requires: tuple[str, ...] = ()  # environment variables the example needs


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    found: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        needs = _REQUIRES.match(before)
        requires = tuple(re.split(r"[\s,]+", needs["names"])) if needs else ()
        language = opening["info"].strip().split(" ")[0].split("{")[0].lower()
        body: list[str] = []
        index += 1
        start = index + 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if (
                closing is not None
                and closing["ticks"].startswith(ticks)
                and not closing["info"].strip()
            ):
                break
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        code = textwrap.dedent("\n".join(body)) + "\n"
        found.append(Block(language, code, start, requires))
        index += 1
    return found


def test_blocks_are_found_with_their_lines() -> None:
    page = "# T\n\n```python\nx = 1\n```\n\ntext\n\n  ```py\n  y = x\n  ```\n```toml\na=1\n```\n"
    found = blocks(page)
    assert [(b.language, b.code, b.line) for b in found] == [
        ("python", "x = 1\n", 4),
        ("py", "y = x\n", 10),
        ("toml", "a=1\n", 13),
    ]
    needs = "<!-- docs-test: requires LEADFUNNEL_TEST_POSTGRES_URL -->\n\n```python\npass\n```\n"
    assert blocks(needs)[0].requires == ("LEADFUNNEL_TEST_POSTGRES_URL",)
    assert blocks(page)[0].requires == ()


PAGES = sorted(DOCS.glob("**/*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runnable = [b for b in blocks(page.read_text(encoding="utf-8")) if b.language in _LANGUAGES]
    if not runnable:
        pytest.skip(f"{page.name} has no Python examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for block in runnable:
        if not all(os.environ.get(name) for name in block.requires):
            continue  # needs a server this run does not have
        if block.language == "pycon":
            _run_session(page, block, namespace)
        else:
            # Pad with blank lines so that tracebacks show the page's own line numbers.
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(page), "exec", dont_inherit=True), namespace)


def _run_session(page: Path, block: Block, namespace: dict[str, object]) -> None:
    test = doctest.DocTestParser().get_doctest(
        block.code, namespace, f"{page.name}:{block.line}", str(page), block.line - 1
    )
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)
    namespace.update(test.globs)  # later blocks see what the session defined


_LANGUAGES = {"python", "py", "pycon"}


def test_the_concepts_page_shows_the_current_diagrams() -> None:
    import leadfunnel

    diagrams = [
        b.code
        for b in blocks((DOCS / "concepts.md").read_text(encoding="utf-8"))
        if b.language == "mermaid"
    ]
    assert diagrams == [leadfunnel.diagram("lead"), leadfunnel.diagram("opportunity")]
