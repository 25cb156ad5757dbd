"""The qualification rules after a second audit: a ``field`` rule reads its bounds as the
lead model reads the field (enum order, phones in E.164, times with their offset), a
verdict's ``missing`` takes one name, the registry knows a class defined again and a
name two plugins claim, and ``source`` refuses a source both allowed and blocked."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import NaiveDatetime, field_validator, model_validator

from conftest import survey
from leadfunnel import (
    ConfigError,
    Funnel,
    Interest,
    Lead,
    LeadStatus,
    Profile,
    QualificationEngine,
    rules,
)
from leadfunnel.rules import (
    BaseRule,
    FieldRule,
    Niche,
    Source,
    Verdict,
    make_rule,
    register_rule,
)


def _engine(*given: dict[str, Any]) -> QualificationEngine:
    return QualificationEngine.from_dict({"profiles": [{"name": "p", "rules": list(given)}]})


class Level(StrEnum):
    """Declared from least to most; alphabetically it is gold < platinum < silver < tin."""

    TIN = "tin"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class Priority(IntEnum):
    """Declared out of numeric order: an IntEnum orders by number, as Python does."""

    HIGH = 3
    LOW = 1
    MEDIUM = 2


class AppLead(Lead):
    level: Level | None = None
    priority: Priority | None = None
    last_seen: datetime | None = None
    seen_locally: NaiveDatetime | None = None
    renewal: date | None = None
    sku: str | None = None

    @field_validator("sku")
    @classmethod
    def _sku_upper(cls, value: str | None) -> str | None:
        # An application's own normaliser: a bound must be read through it too.
        return None if value is None else value.replace(" ", "").upper()


class StrictLead(Lead):
    """A model validator that refuses the record a bound is read on (no company)."""

    level: Level | None = None

    @model_validator(mode="after")
    def _needs_company(self) -> StrictLead:
        if self.level is not None and self.company is None:
            raise ValueError("a lead with a level names its company")
        return self


# --- 1. min and max order an enum field as the enum declares it ---------------------------


def test_interest_min_slight_passes_high_and_fails_none() -> None:
    engine = _engine({"rule": "field", "field": "interest", "min": "slight"})
    outcomes = {i: engine.evaluate(Lead(interest=i)).verdicts["p"][0] for i in Interest}
    assert outcomes[Interest.HIGH].outcome == "pass"
    assert outcomes[Interest.SLIGHT].outcome == "pass"
    assert outcomes[Interest.NONE].outcome == "fail"
    assert outcomes[Interest.NONE].reason == "interest none is below slight"


def test_an_enum_range_is_checked_in_declared_order() -> None:
    FieldRule("interest", min="slight", max="high")  # alphabetically "slight" > "high"
    with pytest.raises(ConfigError, match="min high is above max slight: nothing passes"):
        FieldRule("interest", min="high", max="slight")
    with pytest.raises(ConfigError, match="min high is above max slight"):
        _engine({"rule": "field", "field": "interest", "min": "high", "max": "slight"})


_BOUND = st.one_of(st.none(), st.sampled_from(list(Interest)))


@given(low=_BOUND, high=_BOUND, value=st.sampled_from(list(Interest)), as_text=st.booleans())
@survey(120)
def test_interest_bounds_follow_the_declared_order(
    low: Interest | None, high: Interest | None, value: Interest, as_text: bool
) -> None:
    order = list(Interest)
    if low is None and high is None:
        return
    if low is not None and high is not None and order.index(low) > order.index(high):
        with pytest.raises(ConfigError, match="nothing passes"):
            FieldRule("interest", min=low, max=high)
        return
    # As a config gives them (text, any case of the value) or as members.
    text: dict[Interest | None, str | None] = {None: None, **{i: i.value for i in Interest}}
    rule = FieldRule(
        "interest", min=text[low] if as_text else low, max=text[high] if as_text else high
    )
    inside = (low is None or order.index(low) <= order.index(value)) and (
        high is None or order.index(value) <= order.index(high)
    )
    assert rule.evaluate(Lead(interest=value)).ok is inside


@given(
    low=st.one_of(st.none(), st.sampled_from(list(Level))),
    high=st.one_of(st.none(), st.sampled_from(list(Level))),
    value=st.sampled_from(list(Level)),
)
@survey(120)
def test_an_applications_enum_orders_as_declared_not_alphabetically(
    low: Level | None, high: Level | None, value: Level
) -> None:
    order = list(Level)
    if (low is None and high is None) or (
        low is not None and high is not None and order.index(low) > order.index(high)
    ):
        return
    rule = FieldRule("level", min=None if low is None else low.value, max=high)
    inside = (low is None or order.index(low) <= order.index(value)) and (
        high is None or order.index(value) <= order.index(high)
    )
    assert rule.evaluate(AppLead(level=value)).ok is inside


def test_a_custom_enum_range_is_checked_when_the_funnel_is_made() -> None:
    engine = _engine({"rule": "field", "field": "level", "min": "platinum", "max": "gold"})
    with pytest.raises(ConfigError, match="min platinum is above max gold: nothing passes"):
        Funnel(engine=engine, lead_model=AppLead)
    fine = _engine({"rule": "field", "field": "level", "min": "silver", "max": "platinum"})
    Funnel(engine=fine, lead_model=AppLead)  # alphabetically silver > platinum: still fine


def test_an_int_enum_orders_by_its_numbers() -> None:
    rule = FieldRule("priority", min=2)
    assert rule.evaluate(AppLead(priority=Priority.HIGH)).ok
    assert rule.evaluate(AppLead(priority=Priority.MEDIUM)).ok
    assert rule.evaluate(AppLead(priority=Priority.LOW)).reason == "priority 1 is below 2"


def test_a_status_bound_orders_by_the_lifecycle_as_declared() -> None:
    # Documented: the declared order; a status is better named with `in`.
    rule = FieldRule("status", max="raw")
    assert rule.evaluate(Lead(status=LeadStatus.FARM_LIST)).ok
    assert rule.evaluate(Lead(status=LeadStatus.QUALIFIED)).reason == (
        "status qualified is above raw"
    )


def test_equals_and_in_on_an_enum_still_compare_values() -> None:
    assert FieldRule("interest", equals="high").evaluate(Lead(interest="high")).ok
    assert FieldRule("interest", one_of=["none", "slight"]).evaluate(Lead(interest="none")).ok
    assert not FieldRule("interest", one_of=["slight"]).evaluate(Lead(interest="high")).ok


# --- 2. bounds are read as the lead model reads the field ----------------------------------


def test_a_phone_bound_is_read_as_a_leads_phone_is() -> None:
    engine = _engine(
        {"rule": "field", "field": "phone", "in": ["(512) 555-0100", "+1 512 555 0101"]}
    )
    for phone in ["(512) 555-0100", "+15125550101", "512.555.0101"]:
        assert engine.evaluate(Lead(phone=phone)).qualified, phone
    verdict = engine.evaluate(Lead(phone="+15125550199")).verdicts["p"][0]
    assert verdict.reason == "phone +15125550199 is not one of +15125550100, +15125550101"
    assert FieldRule("phone", equals="512-555-0100").evaluate(Lead(phone="(512) 555 0100")).ok


def test_other_phones_elements_are_read_as_phones() -> None:
    rule = FieldRule("other_phones", equals="(512) 555-0100")
    assert rule.evaluate(Lead(other_phones={"+1 512 555 0100"})).ok


def test_a_bound_no_phone_can_be_is_refused_when_loaded() -> None:
    with pytest.raises(ConfigError, match=r"equals='12' is not a value of the field \('12'"):
        _engine({"rule": "field", "field": "phone", "equals": "12"})
    # Read in the default region (US), as Lead(phone=...) reads it: a British national
    # number is refused, saying the region; with its country code it is read.
    with pytest.raises(ConfigError, match="region US"):
        FieldRule("phone", equals="07911 123456")
    rule = FieldRule("phone", equals="+44 7911 123456")
    assert rule.evaluate(Lead(phone="+447911123456")).ok


def test_an_applications_own_validator_reads_the_bounds_too() -> None:
    rule = FieldRule("sku", one_of=["ab 12", "cd-3"])
    assert rule.evaluate(AppLead(sku="AB12")).ok
    assert rule.conditions_for(AppLead).one_of == ("AB12", "CD-3")


def test_a_model_validator_that_refuses_the_empty_record_does_not_refuse_the_bound() -> None:
    rule = FieldRule("level", min="silver")
    Funnel(engine=QualificationEngine([Profile("p", [rule])]), lead_model=StrictLead)
    assert rule.evaluate(StrictLead(level="gold", company="Acme")).ok
    with pytest.raises(ConfigError, match="'bronze' is not a value of the field"):
        FieldRule("level", equals="bronze").conditions_for(StrictLead)


def test_tags_and_emails_are_read_as_the_fields_are() -> None:
    assert FieldRule("tags", one_of=["  vip "]).evaluate(Lead(tags={"VIP"})).ok
    assert FieldRule("email", equals="Bob@EXAMPLE.com").evaluate(Lead(email="bob@example.com")).ok


# --- 3. a time without its offset for a field of aware times -------------------------------


def test_a_naive_bound_on_an_aware_datetime_field_is_refused_when_the_funnel_is_made() -> None:
    engine = _engine({"rule": "field", "field": "last_seen", "min": "2026-01-01"})
    with pytest.raises(ConfigError) as caught:
        Funnel(engine=engine, lead_model=AppLead)
    message = str(caught.value)
    assert "profile 'p', rule #1: rule 'field' on 'last_seen'" in message
    assert "min='2026-01-01' has no UTC offset" in message
    assert 'min = "2026-01-01T00:00:00+00:00"' in message
    with pytest.raises(ConfigError, match="has no UTC offset"):
        FieldRule("last_seen", max=datetime(2027, 1, 1)).conditions_for(AppLead)


def test_a_bound_with_its_offset_judges_aware_times() -> None:
    rule = FieldRule("last_seen", min="2026-01-01T00:00:00+00:00")
    Funnel(engine=QualificationEngine([Profile("p", [rule])]), lead_model=AppLead)
    assert rule.evaluate(AppLead(last_seen=datetime(2026, 2, 1, tzinfo=UTC))).ok
    late = rule.evaluate(AppLead(last_seen=datetime(2025, 12, 31, 23, tzinfo=UTC)))
    assert late.reason == "last_seen 2025-12-31T23:00:00+00:00 is below 2026-01-01T00:00:00+00:00"
    naive = rule.evaluate(AppLead(last_seen=datetime(2026, 2, 1)))
    assert naive.outcome == "fail"
    assert "it has no UTC offset" in naive.reason


def test_naive_fields_and_date_fields_take_bounds_without_an_offset() -> None:
    rule = FieldRule("seen_locally", min="2026-01-01")
    assert rule.evaluate(AppLead(seen_locally=datetime(2026, 2, 1))).ok
    assert FieldRule("renewal", max="2027-12-31").evaluate(AppLead(renewal=date(2027, 6, 1))).ok


# --- 4. Verdict.unknown takes one field name -----------------------------------------------


def test_unknown_takes_one_name_as_that_name_and_none_as_none() -> None:
    assert Verdict.unknown("no e-mail", missing="email").missing == ("email",)
    assert Verdict.unknown("no data", missing=None).missing == ()
    assert Verdict.unknown("no data", missing=["email", "phone"]).missing == ("email", "phone")
    with pytest.raises(TypeError, match="list of field names, or one name, not 3"):
        Verdict.unknown("x", missing=3)  # type: ignore[arg-type]


def test_the_engine_reports_the_field_a_rule_gave_by_name() -> None:
    class NeedsEmail(BaseRule):
        name = "needs_email"

        def evaluate(self, lead: Lead) -> Verdict:
            if lead.email is None:
                return Verdict.unknown("no e-mail", missing="email")
            return Verdict.passed("has an e-mail")

    result = QualificationEngine([Profile("p", [NeedsEmail()])]).evaluate(Lead())
    assert result.decision == "undecided"
    assert result.missing == ("email",)


def test_the_constructor_refusing_text_says_what_takes_one_name() -> None:
    with pytest.raises(TypeError, match=r"Verdict.unknown\(reason, missing=...\)"):
        Verdict("unknown", "x", "email")  # type: ignore[arg-type]


# --- 5. the registry: a class defined again, a name two plugins claim ----------------------


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No registration, warning or module of these tests outlives them."""
    monkeypatch.setattr(rules, "_registered", {})  # registrations last the process
    yield
    for name in [m for m in sys.modules if m.startswith("audit2_")]:
        del sys.modules[name]


_PLUGIN_SOURCE = """
from leadfunnel.rules import BaseRule, Verdict


class {cls}(BaseRule):
    name = "{rule}"

    def __init__(self, **arguments):
        super().__init__()

    def evaluate(self, lead):
        return Verdict.passed("{says}")
"""


def _package(root: Path, module: str, cls: str, says: str, points: dict[str, str]) -> None:
    """A package ``module`` under ``root``, with its dist-info declaring ``points``."""
    (root / f"{module}.py").write_text(_PLUGIN_SOURCE.format(cls=cls, rule=module, says=says))
    dist = root / f"{module}-1.0.dist-info"
    dist.mkdir()
    name = module.replace("_", "-")
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{rule} = {target}\n" for rule, target in points.items())
    (dist / "entry_points.txt").write_text(f"[leadfunnel.rules]\n{lines}")


def test_a_reloaded_module_registers_its_class_again(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "audit2_reloaded.py").write_text(
        _PLUGIN_SOURCE.format(cls="Reloaded", rule="reloaded", says="first")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("audit2_reloaded")
    register_rule("audit2_reloaded", module.Reloaded)
    first = module.Reloaded
    (tmp_path / "audit2_reloaded.py").write_text(
        _PLUGIN_SOURCE.format(cls="Reloaded", rule="reloaded", says="second")
    )
    module = importlib.reload(module)
    assert module.Reloaded is not first
    register_rule("audit2_reloaded", module.Reloaded)  # the same definition: no clash
    assert make_rule("audit2_reloaded").evaluate(Lead()).reason == "second"


def test_a_script_that_is_also_imported_registers_once(tmp_path: Path) -> None:
    (tmp_path / "audit2_script.py").write_text(
        textwrap.dedent(
            """
            from leadfunnel.rules import BaseRule, Verdict, make_rule, register_rule


            class Endpoints(BaseRule):
                name = "endpoints"

                def evaluate(self, lead):
                    return Verdict.passed(__name__)


            register_rule("audit2_endpoints", Endpoints)

            if __name__ == "__main__":
                import audit2_script  # the same file, imported by name: registers again

                assert audit2_script.Endpoints is not Endpoints
                from leadfunnel import Lead

                print(make_rule("audit2_endpoints").evaluate(Lead()).reason)
            """
        )
    )
    run = subprocess.run(
        [sys.executable, str(tmp_path / "audit2_script.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "audit2_script"


def test_a_different_class_of_the_same_name_is_still_refused(fresh_registry: None) -> None:
    def made() -> type[BaseRule]:
        class Local(BaseRule):
            name = "local"

            def evaluate(self, lead: Lead) -> Verdict:
                return Verdict.passed("local")

        return Local

    register_rule("audit2_local", made())
    with pytest.raises(ConfigError, match=r"already registered, to another .*<locals>\.Local"):
        register_rule("audit2_local", made())
    register_rule("audit2_niche", Niche)
    with pytest.raises(ConfigError, match=r"already registered, to leadfunnel\.rules\.Niche"):
        register_rule("audit2_niche", Source)


def test_two_plugins_declaring_one_name_is_a_config_error_naming_both(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, "audit2_one", "One", "one", {"audit2_clash": "audit2_one:One"})
    _package(tmp_path, "audit2_two", "Two", "two", {"audit2_clash": "audit2_two:Two"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        _engine({"rule": "audit2_clash"})
    message = str(caught.value)
    assert "profile 'p', rule #1: rule 'audit2_clash' is declared by 2 installed plugins" in message
    assert "audit2-one 1.0 (audit2_one:One)" in message
    assert "audit2-two 1.0 (audit2_two:Two)" in message
    assert "register_rule('audit2_clash', factory)" in message
    # The application settles it by registering the one it means.
    from audit2_two import Two  # type: ignore[import-not-found]

    register_rule("audit2_clash", Two)
    assert _engine({"rule": "audit2_clash"}).evaluate(Lead()).verdicts["p"][0].reason == "two"


def test_one_plugin_found_twice_is_no_clash(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, "audit2_same", "Same", "same", {"audit2_same": "audit2_same:Same"})
    other = tmp_path / "again"
    other.mkdir()
    dist = other / "audit2_same_copy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: audit2-same-copy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[leadfunnel.rules]\naudit2_same = audit2_same:Same\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(other))
    assert make_rule("audit2_same").evaluate(Lead()).reason == "same"


def test_a_plugin_declaring_a_built_in_name_gets_the_built_in_and_is_named_on_a_refusal(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configs naming a built-in get the built-in, whatever plugin declares the name too
    (no look at the plugins for it); a config written for the plugin's rule, which the
    built-in refuses, is told which plugin it meant and what to do."""
    _package(tmp_path, "audit2_shadow", "Shadow", "shadow", {"niche": "audit2_shadow:Shadow"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rule = make_rule("niche", industries=["IT Services"])
    assert isinstance(rule, Niche)
    with pytest.raises(ConfigError) as caught:
        make_rule("niche", competitors=["Globex"])
    message = str(caught.value)
    assert message.startswith("rule 'niche': got an unexpected keyword argument 'competitors'")
    assert (
        "(plugin audit2-shadow 1.0 (audit2_shadow:Shadow) also declares a rule named 'niche': "
        "configs get the built-in 'niche', never the plugin's; register the plugin's rule "
        "under another name"
    ) in message
    with pytest.raises(ConfigError) as plain:
        make_rule("authority", competitors=["Globex"])  # no plugin declares it: no mention
    assert "plugin" not in str(plain.value)


def test_with_no_plugin_a_built_in_rule_warns_of_nothing(fresh_registry: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_rule("niche", industries=["IT Services"])


# --- 6. a source both allowed and blocked ----------------------------------------------------


def test_a_source_both_allowed_and_blocked_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        _engine({"rule": "source", "allowed": ["webinar"], "blocked": ["Webinar "]})
    assert str(caught.value) == (
        "profile 'p', rule #1: rule 'source': allowed and blocked both name webinar: "
        "no source can pass; keep each source in one list"
    )
    with pytest.raises(ConfigError, match="both name Webinar: a blocked source never passes"):
        Source(allowed=["Webinar", "Referral"], blocked=["webinar", "bought list"])
    assert Source(allowed=["webinar"], blocked=["bought list"]).allowed == ("webinar",)
    assert Source(blocked=["bought list"]).blocked == ("bought list",)
