"""Type-check the documentation's Python examples with ``mypy --strict``.

Each page of ``docs/`` (and the README) becomes one module: its ```` ```python ````
blocks in order, as ``tests/test_docs.py`` runs them in one namespace, padded with blank
lines so that a line of the module is the same line of the page (``pycon`` sessions are
left out). mypy runs once over every page through its API, strict, with pydantic's
plugin (as the project's own configuration and pydantic's documentation have it); its
errors are printed as ``docs/page.md:line: error: ...`` and the exit status is mypy's.

    python tools/check_docs_types.py                 # every page, and the README
    python tools/check_docs_types.py docs/rules.md   # some pages
    python tools/check_docs_types.py --no-pydantic-plugin   # as plain mypy (or pyright) sees them
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_docs import DOCS, blocks  # noqa: E402  (the extraction the docs tests run)

PYTHON = {"python", "py"}  # pycon sessions are doctests: not type-checked
_LOCATION = re.compile(r"^(?P<path>[^:\n]+\.py):(?P<line>\d+):", re.MULTILINE)


def module_source(page_text: str) -> str:
    """A page's Python blocks as one module, each block on the page's own lines."""
    source: list[str] = []
    lines = 0
    for block in blocks(page_text):
        if block.language not in PYTHON:
            continue
        padding = block.line - 1 - lines
        assert padding >= 0, f"block at line {block.line} overlaps the one before"
        source.append("\n" * padding + block.code)
        lines += padding + block.code.count("\n")
    return "".join(source)


def shown(page: Path) -> str:
    """The page's path as reports give it: from the checkout's root when inside it."""
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else str(page)


def module_name(page: Path) -> str:
    """``docs/custom-fields.md`` -> ``docs_custom_fields``: one module per page."""
    return re.sub(r"\W", "_", Path(shown(page)).with_suffix("").as_posix().lstrip("/"))


def check(pages: list[Path], *, pydantic_plugin: bool = True) -> tuple[str, str, int]:
    """Run mypy on the pages' examples; its report speaks of the pages and their lines."""
    with tempfile.TemporaryDirectory(prefix="leadfunnel-docs-types-") as tmp:
        directory = Path(tmp)
        modules: dict[str, Path] = {}  # file name -> page
        for page in pages:
            source = module_source(page.read_text(encoding="utf-8"))
            if source.strip():
                path = directory / f"{module_name(page)}.py"
                path.write_text(source, encoding="utf-8")
                modules[path.name] = page
        if not modules:
            return "no Python examples to check\n", "", 0
        config = directory / "mypy.ini"
        plugins = "plugins = pydantic.mypy\n" if pydantic_plugin else ""
        config.write_text(f"[mypy]\nstrict = True\npython_version = 3.11\n{plugins}")
        out, err, status = api.run(
            [
                "--config-file",
                str(config),
                # No cache: one kept between runs let a page pass that no longer type-
                # checked (it had passed before leadfunnel's types changed), which a
                # fresh clone's CI then failed. A run takes seconds without one.
                "--cache-dir",
                os.devnull,
                *(str(directory / name) for name in modules),
            ]
        )

    def where(match: re.Match[str]) -> str:
        # By file name: mypy repeats a cached module's errors with the path it had then.
        page = modules.get(Path(match["path"]).name)
        if page is None:
            return match[0]
        return f"{shown(page)}:{match['line']}:"

    return _LOCATION.sub(where, out), _LOCATION.sub(where, err), status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "pages", nargs="*", type=Path, help="Markdown pages (default: docs/ and README.md)"
    )
    parser.add_argument(
        "--no-pydantic-plugin",
        action="store_true",
        help="check as mypy without pydantic's plugin (or pyright) does",
    )
    options = parser.parse_args(argv)
    pages = [p.resolve() for p in options.pages] or [
        *sorted(DOCS.glob("**/*.md")),
        ROOT / "README.md",
    ]
    started = time.perf_counter()
    out, err, status = check(pages, pydantic_plugin=not options.no_pydantic_plugin)
    sys.stdout.write(out)
    sys.stderr.write(err)
    print(f"docs examples type-checked in {time.perf_counter() - started:.1f} s")
    return status


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # as mypy's own command exits: tearing its caches down takes seconds
