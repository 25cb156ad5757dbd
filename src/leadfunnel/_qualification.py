"""Qualification: judging a lead against one or more ideal customer profiles.

A :class:`Profile` is a named list of rules (a "client avatar"); a
:class:`QualificationEngine` judges a lead against every profile and sums up:

* a profile *fits* when all its rules pass;
* it *hard-fails* when a hard rule fails; it *fails* when any other rule fails;
* it is *undecided* when nothing fails but some rule could not decide (data missing).

The lead qualifies when any profile fits. ``engine.evaluate(lead)`` changes nothing;
``funnel.qualify(lead)`` applies the outcome to the lead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import pydantic

from ._changes import checked
from ._enums import Interest, LeadStatus, Tier
from ._errors import ConfigError, RuleError
from ._models import Lead
from ._results import Serialised
from ._toml import read_toml
from .rules import (
    FAIL,
    OUTCOME_CODES,
    PASS,
    FieldRule,
    Rule,
    Verdict,
    _BuiltinRule,
    _lacked_field_problem,
    _lacking_field_error,
    _rule_name,
    _with_rule,
    make_rule,
)

__all__ = ["Decision", "Profile", "QualificationEngine", "QualificationResult"]

#: The engine's summary: some profile fits; none fits but some is undecided (data
#: missing); every profile hard-fails; or some profile fails on a soft rule.
Decision = Literal["qualified", "undecided", "hard_fail", "fail"]
ProfileOutcome = Literal["fit", "undecided", "hard_fail", "fail"]


class QualificationResult(Serialised):
    """What the engine made of a lead, and (from ``funnel.qualify``) where it went.

    ``verdicts`` holds every rule's verdict per profile; ``outcomes`` each profile's
    summary (fit, undecided, hard_fail, fail); ``missing`` the fields that kept a rule
    from deciding (for an undecided result: what the undecided profiles lack);
    ``score`` the best profile's weighted share of passed rules; ``status`` the lead's
    status after ``funnel.qualify`` (``None`` from ``evaluate``).

    The engine decides with the built-in rules' fast checks; their verdicts, in
    ``verdicts`` and ``missing``, are worked out on first access (the lead is immutable
    and a built-in rule deterministic, so the answer is the same). Any other rule was
    asked once, and its verdict kept: the one the decision was made on.
    """

    __slots__ = (
        "_missing",
        "_source",
        "_verdicts",
        "decision",
        "outcomes",
        "profile",
        "qualified",
        "score",
        "status",
        "tier",
    )

    def __init__(
        self,
        qualified: bool,
        decision: Decision,
        profile: str | None = None,
        verdicts: Mapping[str, tuple[Verdict, ...]] | None = None,
        outcomes: Mapping[str, ProfileOutcome] | None = None,
        missing: Iterable[str] | None = None,
        score: float = 0.0,
        tier: Tier = Tier.COLD,
        status: LeadStatus | None = None,
        *,
        source: tuple[QualificationEngine, Lead, _Asked] | None = None,
    ) -> None:
        self.qualified = qualified
        self.decision: Decision = decision
        self.profile = profile
        self.outcomes: Mapping[str, ProfileOutcome] = outcomes if outcomes is not None else {}
        self.score = score
        self.tier = tier
        self.status = status
        self._source = source
        self._verdicts = verdicts if verdicts is not None or source is not None else {}
        self._missing = tuple(missing) if missing is not None else None

    def _asked_verdicts(self) -> dict[str, tuple[Verdict, ...]]:
        """The verdicts of the rules that are not built in (the application's own), per
        profile, as the engine asked them; profiles with none left out. Cheap: no
        built-in rule is explained. Empty for a result not made by an engine's
        ``evaluate``."""
        if self._source is None:
            return {}
        engine, _, asked = self._source
        found: dict[str, tuple[Verdict, ...]] = {}
        for profile in engine.profiles:
            verdicts = asked.get(profile.name)
            if verdicts is None:
                continue
            named = tuple(
                _with_rule(verdict, rule)
                for verdict, rule in zip(verdicts, profile._names, strict=True)
                if verdict is not None
            )
            if named:
                found[profile.name] = named
        return found

    @property
    def verdicts(self) -> Mapping[str, tuple[Verdict, ...]]:
        """Every rule's verdict, per profile name."""
        if self._verdicts is None:
            assert self._source is not None
            engine, lead, asked = self._source
            self._verdicts = {p.name: p._explain(lead, asked.get(p.name)) for p in engine.profiles}
        return self._verdicts

    @property
    def missing(self) -> tuple[str, ...]:
        """The lead fields whose absence kept a rule from deciding."""
        if self._missing is None:
            if self.decision == "undecided":
                undecided = {n for n, o in self.outcomes.items() if o == "undecided"}
                verdicts = self._explained(undecided)
            else:
                verdicts = self.verdicts
            self._missing = tuple(
                sorted({f for vs in verdicts.values() for v in vs for f in v.missing})
            )
        return self._missing

    def _explained(self, names: set[str]) -> Mapping[str, tuple[Verdict, ...]]:
        """The verdicts of the profiles ``names`` only: a bulk qualification asks what
        an undecided lead is missing, and need not explain the profiles it failed."""
        if self._verdicts is not None or self._source is None:
            return {n: vs for n, vs in self.verdicts.items() if n in names}
        engine, lead, asked = self._source
        return {
            p.name: p._explain(lead, asked.get(p.name)) for p in engine.profiles if p.name in names
        }

    @property
    def failed(self) -> list[Verdict]:
        """Every failing verdict, across profiles."""
        return [v for verdicts in self.verdicts.values() for v in verdicts if v.outcome == "fail"]

    def with_status(self, status: LeadStatus) -> QualificationResult:
        """The same result, recording where the lead went."""
        return QualificationResult(
            self.qualified,
            self.decision,
            self.profile,
            self.verdicts,
            self.outcomes,
            self.missing,
            self.score,
            self.tier,
            status,
        )

    def __repr__(self) -> str:
        return (
            f"QualificationResult(qualified={self.qualified}, decision={self.decision!r}, "
            f"profile={self.profile!r}, score={self.score:.2f}, tier={self.tier.value!r}, "
            f"status={self.status.value if self.status else None!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QualificationResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data (stored on the ``qualify`` event)."""
        return {
            "qualified": self.qualified,
            "decision": self.decision,
            "profile": self.profile,
            "score": self.score,
            "tier": self.tier.value,
            "missing": list(self.missing),
            "outcomes": dict(self.outcomes),
            "verdicts": {
                name: [v.to_dict() for v in verdicts] for name, verdicts in self.verdicts.items()
            },
            "status": self.status.value if self.status is not None else None,
        }


#: The verdicts of the rules that are not built in, per profile, as the engine asked
#: them about one lead (``None`` in a built-in rule's place: it is explained on demand).
_Asked = Mapping[str, tuple[Verdict | None, ...]]
_NOTHING_ASKED: _Asked = {}


class Profile:
    """An ideal customer profile: a name and the rules a lead must pass to fit it."""

    __slots__ = (
        "_asks",
        "_hard",
        "_judges",
        "_names",
        "_plan",
        "_total",
        "_weights",
        "name",
        "rules",
    )

    def __init__(self, name: str, rules: Iterable[Rule] = ()) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a profile needs a non-empty name, not {name!r}")
        name = _profile_name(name)
        self.name = name
        self.rules: tuple[Rule, ...] = _listed(
            rules, lambda: f"profile {name!r}: rules must be a list of rules"
        )
        if not self.rules:
            raise ConfigError(f"profile {name!r} has no rules; give it at least one")
        for rule in self.rules:
            if not callable(getattr(rule, "evaluate", None)):
                raise ConfigError(
                    f"profile {name!r}: {rule!r} is not a rule (it needs evaluate(lead))"
                )
            named = getattr(rule, "name", type(rule).__name__)
            if not isinstance(named, str) or not named.strip():
                # Verdicts, explanations and errors name the rule: "None" or "" helps nobody.
                raise ConfigError(
                    f"profile {name!r}: the rule {rule!r} has name={named!r}; give it a "
                    "non-empty name (a class attribute, as the built-in rules have)"
                )
        self._names = tuple(_rule_name(r) for r in self.rules)
        self._hard = tuple(_hard(name, r) for r in self.rules)
        self._weights = tuple(_weight(name, r) for r in self.rules)
        self._total = sum(self._weights)
        if not math.isfinite(self._total):
            raise ConfigError(
                f"profile {name!r}: its rules' weights add up to more than a number can "
                "hold; weights are shares of the score: give smaller ones (1, 2, 3...)"
            )
        self._judges = tuple(_Judge(rule, name) for rule in self.rules)
        # (check, hard, weight) per rule: built-in rules answer with a code and
        # allocate nothing (their verdicts are explained on demand, the same each time).
        self._plan = tuple(
            (_checker(rule), hard, weight)
            for rule, hard, weight in zip(self.rules, self._hard, self._weights, strict=True)
        )
        # Any other rule is asked for its verdict, once per lead, and the verdict kept:
        # asked twice, a rule (a score from a service, say) could answer otherwise.
        # Per rule, its judge, or None for a built-in; None if every rule is built in.
        asks = tuple(
            None if check is not None else judge
            for (check, _, _), judge in zip(self._plan, self._judges, strict=True)
        )
        self._asks = None if all(a is None for a in asks) else asks

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, rules=[{', '.join(self._names)}])"

    def explain(self, lead: Lead) -> tuple[Verdict, ...]:
        """Every rule's verdict for ``lead``, each naming its rule (every rule asked)."""
        return self._explain(lead, None)

    def _explain(self, lead: Lead, asked: tuple[Verdict | None, ...] | None) -> tuple[Verdict, ...]:
        """Every rule's verdict for ``lead``: those ``asked`` already as they were."""
        verdicts = []
        for index, (judge, name) in enumerate(zip(self._judges, self._names, strict=True)):
            verdict = asked[index] if asked is not None else None
            if verdict is None:
                verdict = judge(lead)
            verdicts.append(verdict if verdict.rule == name else _with_rule(verdict, name))
        return tuple(verdicts)

    def _tally(
        self, lead: Lead, asks: tuple[Callable[[Lead], Verdict] | None, ...]
    ) -> tuple[float, bool, bool, bool, tuple[Verdict | None, ...]]:
        """The engine's judgement of a profile with rules of its own (not built in):
        passed weight, failed, hard-failed, unknown, and the verdicts those rules gave."""
        passed = 0.0
        failed = hard_failed = unknown = False
        asked: list[Verdict | None] = []
        for (check, hard, weight), ask in zip(self._plan, asks, strict=True):
            if ask is None:
                asked.append(None)
                code = check(lead)  # type: ignore[misc]
            else:
                verdict = ask(lead)
                asked.append(verdict)
                code = OUTCOME_CODES[verdict.outcome]
            if code == PASS:
                passed += weight
            elif code == FAIL:
                failed = True
                if hard:
                    hard_failed = True
            else:
                unknown = True
        return passed, failed, hard_failed, unknown, tuple(asked)


def _listed(values: Any, expected: Callable[[], str]) -> tuple[Any, ...]:
    """``values`` (a list, tuple or other iterable) as a tuple; anything else (``None``,
    a single object, a string, whose characters are not what is listed) a
    :class:`ConfigError` saying ``expected()`` and what was given instead."""
    if values is None:
        raise ConfigError(f"{expected()}, not None")
    if isinstance(values, (str, bytes)):
        raise ConfigError(f"{expected()}, not the string {values!r}")
    try:
        items = iter(values)
    except TypeError:
        raise ConfigError(
            f"{expected()}, not a single {type(values).__name__}; put it in a list: [{values!r}]"
        ) from None
    return tuple(items)


def _profile_name(name: str) -> str:
    """``name`` as the lead's ``profile`` field takes it (whitespace around it stripped),
    or a :class:`ConfigError`: the engine's answer is recorded on each lead it qualifies,
    so a name that field refuses (too long, a control character) would be a lead no read
    accepts."""
    valid = lead_field(
        "profile",
        name,
        lambda problem: (
            f"profile {shown_name(name)}: the name cannot be recorded as a lead's profile: "
            f"{problem}; rename the profile (the engine records its name on each lead it "
            "qualifies, as Lead.profile)"
        ),
    )
    assert valid is not None  # blank names are refused before
    return valid


def lead_field(field: str, value: str, refusal: Callable[[str], str]) -> str | None:
    """``value``, a name from configuration (a profile, an owner), as the lead's
    ``field`` takes it; a value the field refuses is a :class:`ConfigError` saying
    ``refusal(problem)``, raised before any lead holds it (a lead no read accepts)."""
    try:
        return checked(Lead, field, value)
    except pydantic.ValidationError as exc:
        raise ConfigError(refusal(problem_of(exc))) from None


def shown_name(name: str) -> str:
    """``name`` for an error message: quoted, control characters escaped, a long one
    cut short (its length said)."""
    if len(name) <= 40:
        return repr(name)
    return f"{name[:30]!r}... ({len(name)} characters)"


def problem_of(exc: pydantic.ValidationError) -> str:
    """What a field's validation said was wrong with a value, in one line."""
    message = str(exc.errors()[0]["msg"])
    return message.removeprefix("Value error, ")


def _hard(profile: str, rule: Rule) -> bool:
    """The rule's ``hard`` (default False): True or False, or a ConfigError."""
    hard = getattr(rule, "hard", False)
    if not isinstance(hard, bool):
        raise ConfigError(
            f"profile {profile!r}: rule {_rule_name(rule)!r} has hard={hard!r}; hard is "
            "True or False (True: its failure disqualifies at once)"
        )
    return hard


def _weight(profile: str, rule: Rule) -> float:
    """The rule's ``weight`` (default 1): a positive, finite number, or a ConfigError."""
    weight = getattr(rule, "weight", 1.0)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or weight <= 0
    ):
        raise ConfigError(
            f"profile {profile!r}: rule {_rule_name(rule)!r} has weight {weight!r}; "
            "a weight is a positive number (its share of the score)"
        )
    return float(weight)


def _checker(rule: Rule) -> Callable[[Lead], int] | None:
    """A built-in rule's fast ``check`` (a code, no verdict); ``None`` for any other,
    a subclass of a built-in that answers with an ``evaluate`` of its own included (its
    ``check`` might not say what its ``evaluate`` does)."""
    if isinstance(rule, _BuiltinRule) and type(rule).evaluate is _BuiltinRule.evaluate:
        return rule.check
    return None


class _Judge:
    """``rule.evaluate``, with whatever goes wrong in it turned into a
    :class:`~leadfunnel.RuleError` saying which rule, profile and lead. A class, not a
    closure, so that an engine pickles (to worker processes, say)."""

    __slots__ = ("name", "profile", "rule")

    def __init__(self, rule: Rule, profile: str) -> None:
        self.rule = rule
        self.profile = profile
        self.name = _rule_name(rule)

    def __call__(self, lead: Lead) -> Verdict:
        rule, profile, name = self.rule, self.profile, self.name
        try:
            verdict = rule.evaluate(lead)
        except RuleError as exc:
            if (exc.rule, exc.profile, exc.lead_id) == (name, profile, lead.id):
                raise
            # Raised by an engine this rule asks in turn: this rule failed on this lead.
            raise RuleError(name, profile, lead.id, f"RuleError: {exc}") from exc
        except ConfigError as exc:
            # The rule's configuration is wrong (a field rule naming a field this lead's
            # class lacks, say): fixed in the config, not by answering unknown.
            text = str(exc)
            named = text if text.startswith(f"rule {name!r}") else f"rule {name!r}: {text}"
            raise ConfigError(f"profile {profile!r}, {named}") from exc
        except Exception as exc:
            raise RuleError(name, profile, lead.id, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(verdict, Verdict):
            raise RuleError(name, profile, lead.id, f"it returned {verdict!r}, not a Verdict")
        outcome = verdict.outcome
        if not isinstance(outcome, str) or outcome not in OUTCOME_CODES:
            raise RuleError(
                name,
                profile,
                lead.id,
                f"its verdict's outcome is {outcome!r}, not 'pass', 'fail' or 'unknown'",
            )
        if not isinstance(verdict.reason, str):
            raise RuleError(
                name, profile, lead.id, f"its verdict's reason is {verdict.reason!r}, not text"
            )
        fields = type(lead).model_fields
        unknown = [field for field in verdict.missing if field not in fields]
        if unknown:
            raise RuleError(
                name,
                profile,
                lead.id,
                f"its verdict says {unknown[0]!r} is missing, but {type(lead).__name__} has "
                "no such field (missing= names the fields a lead lacks)",
            )
        return verdict


class QualificationEngine:
    """Judges leads against one or more profiles; a lead qualifies if it fits any.

    >>> from leadfunnel import Lead
    >>> from leadfunnel.rules import Geography, Niche
    >>> engine = QualificationEngine(
    ...     [Profile("msp", [Niche(["IT Services"]), Geography(["US"], hard=True)])]
    ... )
    >>> engine.evaluate(Lead(industry="it services", country="USA")).qualified
    True
    """

    def __init__(self, profiles: Iterable[Profile]) -> None:
        self.profiles: tuple[Profile, ...] = _listed(
            profiles, lambda: "a qualification engine takes a list of profiles ([Profile(...)])"
        )
        if not self.profiles:
            raise ConfigError("a qualification engine needs at least one profile")
        seen: set[str] = set()
        for profile in self.profiles:
            if not isinstance(profile, Profile):
                raise ConfigError(f"{profile!r} is not a Profile")
            if profile.name in seen:
                raise ConfigError(f"two profiles are named {profile.name!r}; names must differ")
            seen.add(profile.name)
        self._plans = tuple((p.name, p._plan, p._total, p._asks, p) for p in self.profiles)

    def __repr__(self) -> str:
        return f"QualificationEngine({list(self.profiles)!r})"

    # --- construction from data -------------------------------------------------------

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> QualificationEngine:
        """Build an engine from data shaped like the TOML format (see ``docs/rules.md``).

        Raises :class:`ConfigError` naming the profile, the rule and the problem.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"the config must be a mapping, not {type(config).__name__}")
        unknown_keys = set(config) - {"profiles"}
        if unknown_keys:
            raise ConfigError(
                f"unknown top-level key(s) {', '.join(sorted(unknown_keys))}; "
                "the config holds 'profiles'"
            )
        profiles = config.get("profiles")
        if not isinstance(profiles, Sequence) or isinstance(profiles, str) or not profiles:
            raise ConfigError("the config needs a non-empty list 'profiles'")
        return cls(_profile_from_dict(i, p) for i, p in enumerate(profiles, 1))

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> QualificationEngine:
        """Build an engine from a TOML file (``[[profiles]]`` tables)."""
        data = read_toml(path, "rules file")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{Path(path)}: {exc}") from None

    # --- judging ----------------------------------------------------------------------

    def evaluate(self, lead: Lead) -> QualificationResult:
        """Judge ``lead`` against every profile; changes nothing."""
        # The hot path of qualification: a profile of built-in rules is judged with their
        # fast checks in one flat loop, its verdicts explained only if someone asks. Any
        # other rule is asked for its verdict once, and the verdict kept for explaining.
        outcomes: dict[str, ProfileOutcome] = {}
        best_fit: str | None = None
        best_score = 0.0
        undecided = False
        all_hard = True
        asked: dict[str, tuple[Verdict | None, ...]] | None = None
        for name, plan, total, asks, profile in self._plans:
            if asks is None:
                passed = 0.0
                failed = hard_failed = unknown = False
                for check, hard, weight in plan:
                    code = check(lead)  # type: ignore[misc]
                    if code == PASS:
                        passed += weight
                    elif code == FAIL:
                        failed = True
                        if hard:
                            hard_failed = True
                    else:
                        unknown = True
            else:
                passed, failed, hard_failed, unknown, verdicts = profile._tally(lead, asks)
                if asked is None:
                    asked = {}
                asked[name] = verdicts
            score = passed / total
            if score > best_score:
                best_score = score
            if hard_failed:
                outcomes[name] = "hard_fail"
                continue
            all_hard = False
            if failed:
                outcomes[name] = "fail"
            elif unknown:
                outcomes[name] = "undecided"
                undecided = True
            else:
                outcomes[name] = "fit"
                # Among fits, the alphabetically first name wins: the result must not
                # depend on the order the profiles were listed in.
                if best_fit is None or name < best_fit:
                    best_fit = name
        decision: Decision
        if best_fit is not None:
            decision = "qualified"
            tier = Tier.HOT if lead.interest == Interest.HIGH else Tier.WARM
        else:
            tier = Tier.COLD
            decision = "undecided" if undecided else "hard_fail" if all_hard else "fail"
        return QualificationResult(
            best_fit is not None,
            decision,
            best_fit,
            None,
            outcomes,
            None,
            best_score,
            tier,
            source=(self, lead, _NOTHING_ASKED if asked is None else asked),
        )


def _profile_from_dict(index: int, data: Any) -> Profile:
    if not isinstance(data, Mapping):
        raise ConfigError(f"profile #{index} must be a table/mapping, not {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"profile #{index} needs a non-empty 'name'")
    name = _profile_name(name)
    extra = set(data) - {"name", "rules"}
    if extra:
        raise ConfigError(
            f"profile {name!r}: unknown key(s) {', '.join(sorted(extra))}; "
            "a profile has 'name' and 'rules'"
        )
    rules_data = data.get("rules")
    if not isinstance(rules_data, Sequence) or isinstance(rules_data, str) or not rules_data:
        raise ConfigError(f"profile {name!r} needs a non-empty list 'rules'")
    rules: list[Rule] = []
    for position, rule_data in enumerate(rules_data, 1):
        if not isinstance(rule_data, Mapping):
            raise ConfigError(f"profile {name!r}, rule #{position}: must be a table/mapping")
        arguments = dict(rule_data)
        rule = arguments.pop("rule", None)
        if not isinstance(rule, str) or not rule:
            raise ConfigError(
                f"profile {name!r}, rule #{position}: needs 'rule' naming the rule "
                "(niche, authority, money, need, geography, company_size, source or a plugin)"
            )
        try:
            rules.append(make_rule(rule, **arguments))
        except ConfigError as exc:
            raise ConfigError(f"profile {name!r}, rule #{position}: {exc}") from None
    return Profile(name, rules)


def check_field_rules(engine: object, model: type[Lead]) -> None:
    """A :class:`~leadfunnel.ConfigError` if a ``field`` rule of ``engine`` names a field
    ``model`` (the funnel's lead class) lacks, or has a bound that is no value of that
    field: found when the funnel is made, not on the first lead qualified. An engine of
    another kind is not looked into."""
    if not isinstance(engine, QualificationEngine):
        return
    for profile in engine.profiles:
        for number, rule in enumerate(profile.rules, 1):
            if not isinstance(rule, FieldRule):
                continue
            try:
                rule.conditions_for(model)  # its field, and its bounds as the field's type
            except (ConfigError, ValueError) as exc:
                where = f"profile {profile.name!r}, rule #{number}"
                lacked = _lacked_field_problem(exc)
                if lacked is not None:  # its advice stays one the command line can replace
                    raise _lacking_field_error(f"{where}: {lacked}") from None
                raise ConfigError(f"{where}: {exc}") from None
