"""The README's promises: two commands first, and a quickstart that runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_opens_with_the_install_and_demo_command_then_the_test_command() -> None:
    first = _blocks("sh")[0].strip().splitlines()
    assert len(first) == 2
    assert "pip install" in first[0]
    assert first[0].endswith("leadfunnel demo")
    assert "pytest" in first[1]


def test_the_quickstart_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (code,) = _blocks("python")
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert printed.startswith("True\n")
    assert "won" in printed
    assert "qualified" in printed
    assert (tmp_path / "quickstart.db").exists()
