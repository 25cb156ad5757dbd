"""Configuration as a new integrator first writes it (an audit): a ``Path`` or a number
given for a database URL, a ``field`` rule on a custom field run from the command line
without ``--lead-model``, a misspelt rule argument, and records that name nobody given
to ``import_leads``. Each is the library's own error saying what to write; never a bare
``TypeError``, and never a lead stored that names nobody."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadfunnel import ConfigError, SqlRepository


@pytest.mark.parametrize("migrate", ["auto", "check", "never"])
def test_a_path_for_a_database_url_is_refused_with_the_url_to_write(
    tmp_path: Path, migrate: str
) -> None:
    path = tmp_path / "x.db"
    with pytest.raises(ConfigError) as caught:
        SqlRepository(path, migrate=migrate)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "PosixPath" in message or "WindowsPath" in message
    assert "a path is not a URL" in message
    assert f"sqlite:///{path}" in message  # the URL to write for this very file
    assert 'SqlRepository(f"sqlite:///{path}")' in message
    assert not path.exists()  # nothing was created under the path's name


@pytest.mark.parametrize("url", [123, b"sqlite://", None])
def test_a_url_of_another_type_is_refused_naming_the_type(url: object) -> None:
    with pytest.raises(ConfigError) as caught:
        SqlRepository(url)  # type: ignore[arg-type]
    message = str(caught.value)
    assert f"not {type(url).__name__}" in message
    assert "sqlite:///funnel.db" in message
    assert "sqlite:////abs/path/x.db" in message
