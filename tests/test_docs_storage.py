"""docs/storage.md's RepositoryContract example passes under pytest, as a reader would
run it (tests/test_docs.py runs every page's examples as plain Python)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).parent.parent / "docs" / "storage.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.slow  # scheduled first: see conftest
def test_the_contract_example_passes_under_pytest(tmp_path: Path) -> None:
    (example,) = [b for b in BLOCKS if "RepositoryContract)" in b]
    (tmp_path / "test_my_adapter.py").write_text(example, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_adapter.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d\d passed", result.stdout), result.stdout


def test_the_page_names_every_method_an_adapter_implements() -> None:
    from leadfunnel.storage import Repository

    text = PAGE.read_text(encoding="utf-8")
    missing = sorted(m for m in Repository.__abstractmethods__ if f"`{m}" not in text)
    assert not missing, f"docs/storage.md does not name {missing}"
