"""Names from configuration that the funnel writes into records (a profile's name into
``Lead.profile``, an owner group's owners and backup into ``Lead.owner``) are held to
that field's rules when the configuration is built: a ``ConfigError`` naming the profile
or group, never a row that every later read refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from conftest import make_repository, run_leadfunnel
from leadfunnel import (
    ConfigError,
    Contact,
    Funnel,
    Lead,
    LeadStatus,
    OwnerGroup,
    Profile,
    QualificationEngine,
    QualificationResult,
    RoutingRules,
    SqlRepository,
)
from leadfunnel.rules import Niche

LONG = "p" * 201
BAD_NAMES = [LONG, "ana\x1b[2J", "line\nbreak", "nul\x00", "del\x7f"]
STORES = ["memory", "sqlite"]


def _niche() -> list[Any]:
    return [Niche(["IT Services"])]


# --- qualification profiles -------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_profile_named_as_no_lead_profile_can_be_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"profile .*cannot be recorded as a lead's profile"):
        Profile(name, _niche())


@pytest.mark.parametrize("name", BAD_NAMES)
def test_from_dict_refuses_the_name_and_says_which_profile(name: str) -> None:
    config = {"profiles": [{"name": name, "rules": [{"rule": "niche", "industries": ["IT"]}]}]}
    with pytest.raises(ConfigError) as caught:
        QualificationEngine.from_dict(config)
    message = str(caught.value)
    assert message.startswith("profile '")
    assert "rename the profile" in message
    assert "\n" not in message  # shown escaped, on one line
    assert "\x1b" not in message


def test_the_message_names_a_long_profile_shortly_with_its_length() -> None:
    with pytest.raises(ConfigError, match=r"\(201 characters\).*at most 200 characters"):
        Profile(LONG, _niche())


def test_a_name_of_the_longest_a_lead_takes_is_fine_and_spaces_around_go() -> None:
    assert Profile("p" * 200, _niche()).name == "p" * 200
    assert Profile("  msp  ", _niche()).name == "msp"  # as Lead.profile stores it
    with pytest.raises(ConfigError, match="two profiles are named 'msp'"):
        QualificationEngine([Profile("msp", _niche()), Profile(" msp ", _niche())])


def test_from_toml_refuses_the_name_naming_the_file(tmp_path: Path) -> None:
    rules = tmp_path / "long.toml"
    rules.write_text(
        f'[[profiles]]\nname = "{LONG}"\nrules = [{{ rule = "niche", industries = ["IT"] }}]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"long\.toml: profile 'p+'\.\.\. \(201 characters\)"):
        QualificationEngine.from_toml(rules)


@pytest.mark.parametrize("kind", STORES)
def test_a_stored_qualification_reads_back(kind: str, tmp_path: Path) -> None:
    engine = QualificationEngine([Profile(" " + "p" * 200 + " ", _niche())])
    funnel = Funnel(make_repository(kind, tmp_path), engine=engine)
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com", industry="IT Services"))
    assert funnel.qualify(lead).profile == "p" * 200
    assert funnel.get_lead(lead.id).profile == "p" * 200
    assert [lead.profile for lead in funnel.leads()] == ["p" * 200]
    funnel.report()


# --- routing ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_NAMES)
def test_an_owner_no_lead_owner_can_be_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"owner group 'g': owners names .*lead's owner"):
        OwnerGroup("g", owners=["ben", name])


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_backup_no_lead_owner_can_be_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"owner group 'g': backup names .*lead's owner"):
        OwnerGroup("g", owners=["ben"], backup=name)


def test_a_blank_backup_is_refused() -> None:
    with pytest.raises(ConfigError, match="backup must be an owner's name or None"):
        OwnerGroup("g", owners=["ben"], backup="  ")


def test_a_backup_is_stored_as_the_owner_field_takes_it() -> None:
    group = OwnerGroup("g", owners=["ben"], backup=" carla ", capacity={"carla": 1})
    assert group.backup == "carla"
    assert group.capacity_of("carla") == 1


@pytest.mark.parametrize("key", ["owners", "backup"])
@pytest.mark.parametrize("name", [LONG, "ana\x1b[2J"])
def test_the_routing_config_refuses_the_name_naming_the_group(key: str, name: str) -> None:
    group: dict[str, Any] = {"name": "inbound", "owners": ["ben"]}
    if key == "owners":
        group["owners"] = [name]
    else:
        group["backup"] = name
    with pytest.raises(ConfigError) as caught:
        RoutingRules.from_dict({"groups": [group], "default": "inbound"})
    message = str(caught.value)
    assert message.startswith(f"routing: groups[0] ('inbound'): {key} names ")
    assert "\x1b" not in message


def test_the_routing_toml_refuses_a_long_owner(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(
        f'default = "inbound"\n[[groups]]\nname = "inbound"\nowners = ["{LONG}"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"owners names 'p+'\.\.\. \(201 characters\)"):
        RoutingRules.from_toml(path)


@pytest.mark.parametrize("kind", STORES)
def test_a_routed_owner_reads_back(kind: str, tmp_path: Path) -> None:
    owner = "o" * 200
    router = RoutingRules([OwnerGroup("g", owners=[f" {owner} "], backup="b")], default="g")
    funnel = Funnel(make_repository(kind, tmp_path), router=router)
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com"))
    assert lead.owner == owner
    assert funnel.get_lead(lead.id).owner == owner
    assert funnel.leads(owner=owner) == [funnel.get_lead(lead.id)]


# --- the facade's own owner arguments ----------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("argument", ["owner", "setter"])
@pytest.mark.parametrize("name", [LONG, "ana\x1b[2J"])
def test_set_appointment_refuses_an_owner_or_setter_no_deal_takes(
    kind: str, argument: str, name: str, tmp_path: Path
) -> None:
    funnel = Funnel(make_repository(kind, tmp_path))
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com"))
    given: dict[str, Any] = {argument: name}
    with pytest.raises(pydantic.ValidationError, match=argument):
        funnel.set_appointment(lead, force=True, **given)
    assert funnel.opportunities() == []
    assert funnel.get_lead(lead.id).status is LeadStatus.RAW


@pytest.mark.parametrize("kind", STORES)
def test_update_refuses_an_owner_no_lead_takes(kind: str, tmp_path: Path) -> None:
    funnel = Funnel(make_repository(kind, tmp_path))
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com"))
    with pytest.raises(pydantic.ValidationError, match="owner"):
        funnel.update(lead.model_copy(update={"owner": LONG}))
    assert funnel.get_lead(lead.id).owner is None


# --- command line -----------------------------------------------------------------------


def test_qualify_with_a_long_profile_name_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'leadfunnel.db'}"
    funnel = Funnel(SqlRepository(db))
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com", industry="IT"))
    funnel.repository.close()
    (tmp_path / "long.toml").write_text(
        f'[[profiles]]\nname = "{LONG}"\nrules = [{{ rule = "niche", industries = ["IT"] }}]\n',
        encoding="utf-8",
    )
    result = run_leadfunnel(tmp_path, "qualify", "--rules", "long.toml", "--db", db)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leadfunnel: error: ")
    assert "long.toml: profile 'ppp" in lines[0]
    assert "201 characters" in lines[0]
    # Nothing half-written: the lead is as it was, and every read command still works.
    again = Funnel(SqlRepository(db))
    stored = again.get_lead(lead.id)
    assert (stored.status, stored.profile, stored.version) == (LeadStatus.RAW, None, 1)
    again.repository.close()
    report = run_leadfunnel(tmp_path, "report", "--db", db)
    assert report.returncode == 0, report.stderr


class _LongNamedEngine:
    """A custom engine (the Engine protocol) whose profile name no lead can hold."""

    def __init__(self, name: str) -> None:
        self.inner = QualificationEngine([Profile("msp", _niche())])
        self.name = name

    def evaluate(self, lead: Lead) -> QualificationResult:
        result = self.inner.evaluate(lead)
        result.profile = self.name
        return result


class _BadRouter:
    def assign(self, lead: Lead) -> str | None:
        return "ana\x1b[2J"

    def backup_for(self, owner: str | None, lead: Lead | Contact | None = None) -> str | None:
        return None


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_custom_engine_or_router_giving_a_name_no_lead_can_hold_is_a_config_error(
    kind: str, tmp_path: Path
) -> None:
    """The built-in engine and router check their names when built; a custom one's
    answer is checked before anything is written, so no store holds a lead it cannot
    read back."""
    repository = make_repository(kind, tmp_path)
    funnel = Funnel(repository, engine=_LongNamedEngine("p" * 201))
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com", industry="IT Services"))
    with pytest.raises(ConfigError, match="cannot be recorded as a lead's profile"):
        funnel.qualify(lead)
    with pytest.raises(ConfigError, match="cannot be recorded as a lead's profile"):
        funnel.qualify_all()
    assert funnel.get_lead(lead.id).version == lead.version
    routed = Funnel(repository, router=_BadRouter())
    with pytest.raises(ConfigError, match="_BadRouter gave the owner"):
        routed.capture(Lead(first_name="Sam", email="sam@x.example.com"))
    assert funnel.find(email="sam@x.example.com") is None
