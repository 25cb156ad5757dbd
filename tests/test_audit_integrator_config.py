"""Configuration as a new integrator first writes it (an audit): a ``Path`` or a number
given for a database URL, a ``field`` rule on a custom field run from the command line
without ``--lead-model``, a misspelt rule argument, and records that name nobody given
to ``import_leads``. Each is the library's own error saying what to write; never a bare
``TypeError``, and never a lead stored that names nobody."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from leadfunnel import ConfigError, Funnel, QualificationEngine, SqlRepository
from leadfunnel._cli import main


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


FLEET_RULES = """
[[profiles]]
name = "fleet"
rules = [{ rule = "field", field = "endpoints", min = 20 }]
"""


def test_qualify_on_a_field_the_lead_lacks_names_the_lead_model_option(tmp_path: Path) -> None:
    rules_file = tmp_path / "fleet.toml"
    rules_file.write_text(FLEET_RULES, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'funnel.db'}"
    result = CliRunner().invoke(main, ["qualify", "--rules", str(rules_file), "--db", db])
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert "profile 'fleet', rule #1: rule 'field' names 'endpoints'" in message
    assert "which Lead has no field called" in message
    assert "--lead-model MODULE:CLASS" in message
    assert "Funnel(" not in message  # the command line has no Python argument to give


def test_the_python_api_keeps_naming_the_lead_model_argument() -> None:
    engine = QualificationEngine.from_dict(
        {
            "profiles": [
                {"name": "fleet", "rules": [{"rule": "field", "field": "endpoints", "min": 20}]}
            ]
        }
    )
    with pytest.raises(ConfigError) as caught:
        Funnel(engine=engine)
    assert str(caught.value) == (
        "profile 'fleet', rule #1: rule 'field' names 'endpoints', which Lead has no field "
        "called; fix the name, or give the funnel the lead model that has it "
        "(Funnel(..., lead_model=...))"
    )
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
