"""Configuration as a new integrator first writes it (an audit): a ``Path`` or a number
given for a database URL, a ``field`` rule on a custom field run from the command line
without ``--lead-model``, a misspelt rule argument, and records that name nobody given
to ``import_leads``. Each is the library's own error saying what to write; never a bare
``TypeError``, and never a lead stored that names nobody."""

from __future__ import annotations

import csv
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from leadfunnel import ConfigError, Funnel, Lead, QualificationEngine, SqlRepository, rules
from leadfunnel._cli import main
from leadfunnel.rules import BaseRule, Verdict, make_rule, register_rule


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


@pytest.mark.parametrize(
    ("rule", "wrong", "meant", "taken"),
    [
        ("niche", "industrys", "industries", "industries, hard, weight"),
        (
            "money",
            "min_revenue",
            "min_annual_revenue",
            "min_annual_revenue, min_employees, hard, weight",
        ),
        ("geography", "country", "countries", "countries, regions, hard, weight"),
        # The field rule is made by FieldRule.from_config(**arguments): its arguments
        # are FieldRule's, with one_of written as a config writes it, "in".
        ("field", "eqals", "equals", "field, min, max, equals, in, exists, hard, weight"),
    ],
)
def test_a_misspelt_argument_of_a_built_in_rule_is_told_the_right_names(
    rule: str, wrong: str, meant: str, taken: str
) -> None:
    arguments = {"field": "industry"} if rule == "field" else {}
    config = {"profiles": [{"name": "p", "rules": [{"rule": rule, **arguments, wrong: ["x"]}]}]}
    with pytest.raises(ConfigError) as caught:
        QualificationEngine.from_dict(config)
    assert str(caught.value) == (
        f"profile 'p', rule #1: rule {rule!r}: got an unexpected keyword argument {wrong!r} "
        f"(did you mean {meant!r}?); rule {rule!r} takes: {taken}"
    )


def test_an_argument_like_none_the_rule_takes_is_told_them_all() -> None:
    with pytest.raises(ConfigError) as caught:
        make_rule("niche", colour="red")
    assert str(caught.value) == (
        "rule 'niche': got an unexpected keyword argument 'colour'; "
        "rule 'niche' takes: industries, hard, weight"
    )


class _Endpoints(BaseRule):
    name = "audit_integrator_endpoints"

    def __init__(self, minimum: int, *, hard: bool | None = None) -> None:
        super().__init__(hard=hard)
        self.minimum = minimum

    def evaluate(self, lead: Lead) -> Verdict:
        return Verdict.passed("enough")


def _seats(min_seats: int = 1, *, hard: bool = False) -> _Endpoints:
    return _Endpoints(min_seats, hard=hard)


def _anything(**arguments: Any) -> _Endpoints:
    return _Endpoints(**arguments)


@pytest.mark.parametrize(
    ("factory", "wrong", "told"),
    [
        (_Endpoints, "minimun", "(did you mean 'minimum'?); rule '{name}' takes: minimum, hard"),
        (_seats, "min_seat", "(did you mean 'min_seats'?); rule '{name}' takes: min_seats, hard"),
    ],
)
def test_a_misspelt_argument_of_a_registered_rule_is_told_its_signature(
    factory: Any, wrong: str, told: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules, "_registered", {})  # registrations last the process
    name = f"audit_integrator_{factory.__name__.strip('_')}"
    register_rule(name, factory)
    with pytest.raises(ConfigError) as caught:
        make_rule(name, **{wrong: 3})
    message = str(caught.value)
    assert f"got an unexpected keyword argument {wrong!r}" in message
    assert message.endswith(told.format(name=name))


def test_a_factory_taking_any_keyword_lists_no_arguments_it_cannot_tell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rules, "_registered", {})
    register_rule("audit_integrator_anything", _anything)
    with pytest.raises(ConfigError) as caught:
        make_rule("audit_integrator_anything", minimun=3)
    assert str(caught.value) == (
        "rule 'audit_integrator_anything': got an unexpected keyword argument 'minimun'"
    )


NOBODY_ROWS: list[Any] = [
    {},
    {"first_name": " ", "email": " "},
    {"industry": "Retail", "employees": 40},
    {"type": "client", "industry": "Retail"},  # a contact row
    Lead(),
    Lead(industry="Retail", status="suspect"),
]


@pytest.mark.parametrize("nobody", NOBODY_ROWS)
def test_import_leads_rejects_a_row_naming_nobody_alone_with_the_command_lines_reason(
    nobody: Any, tmp_path: Path
) -> None:
    funnel = Funnel()
    report = funnel.import_leads([{"first_name": "Ann"}, nobody, {"company": "Acme"}])
    assert [issue.row for issue in report.rejected] == [2]
    assert len(report.added) == 2  # the rows around it are stored: one row sinks no batch
    assert funnel.count("lead") + funnel.count("contact") == 2
    # The reason is the command line's for such a row of a CSV file, word for word.
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text("First Name,Email,Industry\nAnn,ann@x.example.com,IT\n,,Retail\n")
    rejects = tmp_path / "rejected.csv"
    db = f"sqlite:///{tmp_path / 'funnel.db'}"
    done = CliRunner().invoke(
        main, ["import", str(csv_file), "--db", db, "--rejects", str(rejects)]
    )
    assert done.exit_code == 0, done.output
    with rejects.open(newline="", encoding="utf-8") as file:
        (rejected,) = csv.DictReader(file)
    assert report.rejected[0].reason == rejected["reason"]
    assert rejected["reason"].startswith("names nobody: ")


def test_an_erased_person_naming_nobody_by_design_is_still_imported() -> None:
    funnel = Funnel()
    report = funnel.import_leads([{"erased_at": datetime(2026, 1, 5, tzinfo=UTC)}])
    assert len(report.added) == 1
    assert not report.rejected


@pytest.mark.parametrize(
    "somebody",
    [
        {"last_name": "Rivera"},
        {"phone": "+15125550100"},
        {"email": "pat@acme.example.com"},
        {"other_emails": ["old@acme.example.com"]},
    ],
)
def test_one_field_that_names_a_person_is_enough(somebody: dict[str, Any]) -> None:
    assert len(Funnel().import_leads([somebody]).added) == 1
