"""Qualification rules: what a rule is, the verdict it answers with, and the built-ins.

A rule is any object with a ``name`` and an ``evaluate(lead) -> Verdict`` method; an
optional ``hard`` attribute (default ``False``) makes its failure disqualify at once, and
an optional ``weight`` (default 1) counts in the score. A rule answers ``pass``, ``fail``
or ``unknown`` (the data it needs is missing), always with a reason a sales rep can read.

>>> from leadfunnel import Lead
>>> rule = Niche(["IT Services", "Managed Services"])
>>> rule.evaluate(Lead(industry="Retail")).reason
"industry 'Retail' is not one of IT Services, Managed Services"

Built-in rules, by the name they have in a config file: ``niche`` (:class:`Niche`),
``authority`` (:class:`Authority`), ``money`` (:class:`Money`), ``need`` (:class:`Need`),
``geography`` (:class:`Geography`), ``company_size`` (:class:`CompanySize`) and
``source`` (:class:`Source`). Third-party rules register under the entry-point group
``leadfunnel.rules`` (the entry point names the rule; it loads a class or factory that
takes the config's arguments as keywords) and can then be named in a config file too.

Built-in rules do their preparation once, when they are made (case folding, word
patterns, country codes), and answer passes with a prepared verdict, so judging a lead
costs little more than the comparisons themselves.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import pickle
import re
import sys
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC as _UTC
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import cache
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Protocol,
    Union,
    cast,
    get_args,
    get_origin,
    runtime_checkable,
)

from pydantic import BaseModel, TypeAdapter, ValidationError

from ._errors import ConfigError
from ._models import Lead, normalise_country

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "FAIL",
    "OUTCOME_CODES",
    "PASS",
    "UNKNOWN",
    "Authority",
    "BaseRule",
    "CompanySize",
    "FieldRule",
    "Geography",
    "Money",
    "Need",
    "Niche",
    "Rule",
    "RuleFactory",
    "Source",
    "Verdict",
    "VerdictOutcome",
    "available_rules",
    "make_rule",
    "register_rule",
]

#: The entry-point group third-party rules register under.
ENTRY_POINT_GROUP = "leadfunnel.rules"

VerdictOutcome = Literal["pass", "fail", "unknown"]

#: The codes a built-in rule's fast ``check(lead)`` answers with.
PASS, FAIL, UNKNOWN = 0, 1, 2
OUTCOME_CODES: dict[str, int] = {"pass": PASS, "fail": FAIL, "unknown": UNKNOWN}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule's answer about one lead: ``pass``, ``fail`` or ``unknown``, and why.

    ``missing`` names the lead fields whose absence kept the rule from deciding;
    ``rule`` is the rule's name (the engine fills it in when a rule leaves it out).
    """

    outcome: VerdictOutcome
    reason: str
    missing: tuple[str, ...] = ()
    rule: str | None = None

    def __post_init__(self) -> None:
        # Checked here, once, so that the engine can trust a verdict: a misspelt outcome
        # would otherwise read as "unknown" with nothing missing.
        outcome = self.outcome
        if not isinstance(outcome, str) or outcome not in OUTCOME_CODES:
            raise ValueError(
                f"a verdict's outcome is 'pass', 'fail' or 'unknown', not {outcome!r}; make "
                "it with Verdict.passed(reason), Verdict.failed(reason) or "
                "Verdict.unknown(reason, missing=[...])"
            )
        if not isinstance(self.reason, str):
            raise TypeError(
                f"a verdict's reason must be text (what a sales rep reads), not {self.reason!r}"
            )
        missing = self.missing
        if type(missing) is not tuple:
            if isinstance(missing, str) or not isinstance(missing, Iterable):
                # The field itself takes a list only: text would be read as its letters.
                # Verdict.unknown, the way rules make such a verdict, takes one name too.
                raise TypeError(
                    f"a verdict's missing must be a list of field names, not {missing!r}; "
                    f"give a list, or make it with Verdict.unknown(reason, missing=...), "
                    "which also takes one name"
                )
            missing = tuple(missing)
            object.__setattr__(self, "missing", missing)
        for name in missing:
            if not isinstance(name, str):
                raise TypeError(
                    f"a verdict's missing must be a list of field names; {name!r} is not one"
                )
        if self.rule is not None and not isinstance(self.rule, str):
            raise TypeError(f"a verdict's rule is the rule's name (text), not {self.rule!r}")

    @classmethod
    def passed(cls, reason: str) -> Verdict:
        """The lead meets the rule."""
        return cls("pass", reason)

    @classmethod
    def failed(cls, reason: str) -> Verdict:
        """The lead does not meet the rule."""
        return cls("fail", reason)

    @classmethod
    def unknown(cls, reason: str, missing: str | Iterable[str] | None = ()) -> Verdict:
        """The rule cannot decide: the fields in ``missing`` are empty.

        ``missing`` is a list of field names, or one name (``missing="email"``: the
        field, not its letters); ``None`` names none.
        """
        return cls("unknown", reason, _field_names(missing))

    @property
    def ok(self) -> bool:
        """Whether the verdict is a pass."""
        return self.outcome == "pass"

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain data (for events, JSON and reports)."""
        return {
            "rule": self.rule,
            "outcome": self.outcome,
            "reason": self.reason,
            "missing": list(self.missing),
        }


def _field_names(missing: Any) -> tuple[str, ...]:
    """``Verdict.unknown``'s ``missing`` as a tuple of names: one name given as text is
    that name (what a rule missing one field writes; ``tuple("email")`` would be its
    letters), and ``None`` is none."""
    if missing is None:
        return ()
    if isinstance(missing, str):
        return (missing,)
    if not isinstance(missing, Iterable):
        raise TypeError(
            f"a verdict's missing must be a list of field names, or one name, not {missing!r}"
        )
    return tuple(missing)


@runtime_checkable
class Rule(Protocol):
    """Anything with a ``name`` and ``evaluate(lead) -> Verdict`` is a rule.

    Optional attributes: ``hard`` (bool, default False: a failure disqualifies at once)
    and ``weight`` (a positive number, default 1: its share of the score).
    """

    name: str

    def evaluate(self, lead: Lead) -> Verdict:
        """Judge ``lead``; never change it."""
        ...


class BaseRule(ABC):
    """A base class for your own rules: a ``name``, ``hard`` and ``weight``, checked.

    Subclass it, set ``name`` (how config files name the rule) and write ``evaluate``;
    ``hard`` and ``weight`` may be set on the class too (``hard = True``), or given to
    ``__init__`` per instance, which wins::

        class Endpoints(BaseRule):
            name = "endpoints"

            def __init__(self, minimum: int, *, hard: bool | None = None) -> None:
                super().__init__(hard=hard)  # None: the class's (False here)
                self.minimum = minimum

            def evaluate(self, lead: Lead) -> Verdict:
                ...

    A rule that raises, or returns anything but a :class:`Verdict`, is reported by the
    engine as a :class:`~leadfunnel.RuleError` naming the rule, profile and lead.
    """

    name: str = ""
    #: Whether a failure disqualifies at once; a subclass may set it on the class, and
    #: an instance's ``hard=`` argument overrides that.
    hard: bool = False
    #: The rule's share of a profile's score; set on the class or with ``weight=``.
    weight: float = 1.0

    def __init__(self, *, hard: bool | None = None, weight: float | None = None) -> None:
        # ConfigErrors, as the built-in rules' and a config file's same mistakes are.
        cls = type(self)
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"{cls.__name__} needs a name: set name = '...' on the class")
        if hard is None:
            hard = cls.hard
        if weight is None:
            weight = cls.weight
        if not isinstance(hard, bool):
            raise ConfigError(f"rule {self.name!r}: hard must be true or false, not {hard!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(
                f"rule {self.name!r}: weight must be a positive number, not {weight!r}"
            )
        if not math.isfinite(weight):
            raise ConfigError(f"rule {self.name!r}: weight must be a finite number, not {weight!r}")
        self.hard = hard
        self.weight = float(weight)

    @abstractmethod
    def evaluate(self, lead: Lead) -> Verdict:
        """Judge ``lead`` (never change it): ``Verdict.passed(reason)``,
        ``Verdict.failed(reason)`` or ``Verdict.unknown(reason, missing=[...])``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, hard={self.hard}, weight={self.weight})"


def _fold(text: str) -> str:
    """Case- and whitespace-insensitive form of a word or phrase, composed (NFC): "Café"
    typed decomposed, as macOS and some exports write it, is "Café"."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


class _Remembered:
    """``test(value)``, remembered per raw value (values repeat a lot: a list has a few
    dozen industries, sources and titles, not one per lead)."""

    __slots__ = ("_memo", "_test")

    def __init__(self, test: Callable[[str], bool]) -> None:
        self._test = test
        self._memo: dict[str, bool] = {}

    def __call__(self, value: str) -> bool:
        hit = self._memo.get(value)
        if hit is None:
            if len(self._memo) >= 4096:
                self._memo.clear()  # bounded: a flood of distinct values cannot grow it
            hit = self._memo[value] = self._test(value)
        return hit


@contextmanager
def _config_errors(rule: Callable[[], str]) -> Iterator[None]:
    """A rule's wrong argument (a ``TypeError`` or ``ValueError`` while it is made) as
    the :class:`ConfigError` the same mistake in a config file is, naming the rule."""
    try:
        yield
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(_of_rule(rule(), str(exc))) from None


def _strings(rule: str, argument: str, values: Any, *, allow_empty: bool = False) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{argument} must be a list of strings, not {type(values).__name__}")
    items = list(values)
    bad = [v for v in items if not isinstance(v, str) or not v.strip()]
    if bad:
        raise TypeError(f"{argument} must hold non-empty strings; got {bad[0]!r}")
    if not items and not allow_empty:
        raise ValueError(f"{argument} must name at least one value")
    return items


def _number(argument: str, value: Any, *, head_count: bool = False) -> Decimal | None:
    """A rule's numeric argument: ``None``, or a finite, non-negative number (a whole
    one for a ``head_count``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TypeError(f"{argument} must be a number, not {type(value).__name__}")
    if not _finite(value):
        raise ValueError(
            f"{argument} must be a finite number, not {value}; give a number, or leave "
            f"{argument} out"
        )
    if value < 0:
        raise ValueError(f"{argument} must not be negative, not {value}")
    number = Decimal(str(value))
    if head_count and number != number.to_integral_value():
        raise ValueError(
            f"{argument} must be a whole number of employees, not {value}; give the "
            "head count a lead must have"
        )
    return number


def _finite(value: Any) -> bool:
    """Whether a number is finite (NaN and the infinities are not): any other value is."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Decimal):
        return value.is_finite()
    return True


def _listing(values: Iterable[str]) -> str:
    return ", ".join(values)


@dataclass(eq=False)
class _BuiltinRule:
    """Shared behaviour of the built-in rules: name, hard, weight, prepared verdicts.

    A built-in rule decides with ``check(lead)``, which returns a code (``PASS``,
    ``FAIL``, ``UNKNOWN``) and allocates nothing; ``evaluate(lead)`` turns the code into
    a readable :class:`Verdict`. The engine judges with ``check`` and explains lazily.
    """

    name: str = field(init=False, default="")
    hard: bool = field(default=False, kw_only=True)
    weight: float = field(default=1.0, kw_only=True)

    # Prepared by each rule's __post_init__: a field outside __init__, so that type
    # checkers see each rule's own arguments first (Niche(["IT Services"])).
    _pass: Verdict = field(init=False, repr=False, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A rule built in Python with a wrong argument (Niche("IT"), hard="yes") is a
        # ConfigError, as the same mistake in a config file is.
        super().__init_subclass__(**kwargs)
        prepare = cls.__dict__.get("__post_init__")
        if prepare is None:
            return

        def checked(self: _BuiltinRule) -> None:
            with _config_errors(lambda: self.name or cls.__name__.lower()):
                prepare(self)

        cls.__post_init__ = checked  # type: ignore[attr-defined]

    # A rule pickles as its arguments (an engine sent to worker processes): what its
    # __post_init__ derives from them (patterns, memos of closures) is made again. The
    # rest of its state that pickles (a subclass's own attributes) travels too and is
    # put back after.
    def __getstate__(self) -> tuple[dict[str, Any], dict[str, Any]]:
        arguments = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        rest = {}
        for name, value in self.__dict__.items():
            if name not in arguments:
                try:
                    pickle.dumps(value)
                except Exception:  # a closure, a memo of one: made again on arrival
                    continue
                rest[name] = value
        return arguments, rest

    def __setstate__(self, state: tuple[dict[str, Any], dict[str, Any]]) -> None:
        arguments, rest = state
        self.__dict__.update(arguments)
        self.__post_init__()  # type: ignore[attr-defined]
        self.__dict__.update(rest)

    def _check_common(self) -> None:
        if not isinstance(self.hard, bool):
            raise TypeError(f"hard must be true or false, not {self.hard!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
            raise TypeError(f"weight must be a number, not {self.weight!r}")
        if not math.isfinite(self.weight):
            raise ValueError(f"weight must be a finite positive number, not {self.weight}")
        if self.weight <= 0:
            raise ValueError(f"weight must be positive, not {self.weight}")

    def _verdict(
        self, outcome: VerdictOutcome, reason: str, missing: Iterable[str] = ()
    ) -> Verdict:
        return Verdict(outcome, reason, tuple(missing), self.name)

    def check(self, lead: Lead) -> int:
        """``PASS``, ``FAIL`` or ``UNKNOWN`` for ``lead``, without explaining why."""
        raise NotImplementedError  # pragma: no cover - every built-in overrides it

    def _explain(self, lead: Lead, code: int) -> Verdict:
        raise NotImplementedError  # pragma: no cover - every built-in overrides it

    def evaluate(self, lead: Lead) -> Verdict:
        """Judge ``lead`` and say why."""
        code = self.check(lead)
        return self._pass if code == PASS else self._explain(lead, code)


@dataclass(eq=False)
class Niche(_BuiltinRule):
    """Passes when the lead's ``industry`` is one of ``industries`` (case-insensitive)."""

    industries: Iterable[str] = ()

    def __post_init__(self) -> None:
        self.name = "niche"
        self._check_common()
        self.industries = tuple(_strings(self.name, "industries", self.industries))
        self._keys = frozenset(_fold(i) for i in self.industries)
        keys = self._keys
        self._member = _Remembered(lambda value: _fold(value) in keys)
        self._pass = self._verdict("pass", "industry is a target niche")
        self._unknown = self._verdict("unknown", "no industry given", ["industry"])

    def check(self, lead: Lead) -> int:
        """Judge the lead's industry."""
        industry = lead.industry
        if industry is None:
            return UNKNOWN
        return PASS if self._member(industry) else FAIL

    def _explain(self, lead: Lead, code: int) -> Verdict:
        if code == UNKNOWN:
            return self._unknown
        return self._verdict(
            "fail", f"industry {lead.industry!r} is not one of {_listing(self.industries)}"
        )


@dataclass(eq=False)
class Authority(_BuiltinRule):
    """Passes when the lead's ``title`` contains one of ``titles`` as a whole word.

    "Owner/CEO" and "Co-Founder & CEO" contain "ceo"; "CEO's assistant" does not: a
    possessive names someone else's title.
    """

    titles: Iterable[str] = ()

    def __post_init__(self) -> None:
        self.name = "authority"
        self._check_common()
        self.titles = tuple(_strings(self.name, "titles", self.titles))
        words = sorted({_fold(t) for t in self.titles}, key=len, reverse=True)
        alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in words)
        # A word boundary that also refuses a following apostrophe (possessive).
        edge = r"[\w'\u2019]"
        self._pattern = re.compile(rf"(?<!{edge})(?:{alternatives})(?!{edge})", re.IGNORECASE)
        self._search = self._pattern.search
        # Folded as the titles were: "Großhändler" is "grosshändler" on both sides.
        self._holds_title = _Remembered(lambda title: self._search(_fold(title)) is not None)
        self._pass = self._verdict("pass", "title carries decision authority")
        self._unknown = self._verdict("unknown", "no title given", ["title"])

    def check(self, lead: Lead) -> int:
        """Judge the lead's title."""
        title = lead.title
        if title is None:
            return UNKNOWN
        return PASS if self._holds_title(title) else FAIL

    def _explain(self, lead: Lead, code: int) -> Verdict:
        if code == UNKNOWN:
            return self._unknown
        return self._verdict("fail", f"title {lead.title!r} names none of {_listing(self.titles)}")


@dataclass(eq=False)
class Money(_BuiltinRule):
    """Passes when every given minimum (annual revenue, employees) is met."""

    min_annual_revenue: Any = None
    min_employees: Any = None

    def __post_init__(self) -> None:
        self.name = "money"
        self._check_common()
        self._revenue = _number("min_annual_revenue", self.min_annual_revenue)
        employees = _number("min_employees", self.min_employees, head_count=True)
        self._employees = None if employees is None else int(employees)
        if self._revenue is None and self._employees is None:
            raise ValueError("give min_annual_revenue, min_employees or both")
        self._pass = self._verdict("pass", "meets the minimum to afford us")

    def check(self, lead: Lead) -> int:
        """Judge the lead's revenue and head count against the minimums."""
        code = PASS
        if self._revenue is not None:
            revenue = lead.annual_revenue
            if revenue is None:
                code = UNKNOWN
            elif revenue < self._revenue:
                return FAIL
        if self._employees is not None:
            employees = lead.employees
            if employees is None:
                code = UNKNOWN
            elif employees < self._employees:
                return FAIL
        return code

    def _explain(self, lead: Lead, code: int) -> Verdict:
        missing: list[str] = []
        if self._revenue is not None:
            revenue = lead.annual_revenue
            if revenue is None:
                missing.append("annual_revenue")
            elif revenue < self._revenue:
                return self._verdict(
                    "fail", f"annual revenue {revenue:,} is below the minimum {self._revenue:,}"
                )
        if self._employees is not None:
            employees = lead.employees
            if employees is None:
                missing.append("employees")
            elif employees < self._employees:
                return self._verdict(
                    "fail", f"{employees} employees is below the minimum {self._employees}"
                )
        if missing:
            return self._verdict("unknown", f"{' and '.join(missing)} not known", missing)
        return self._pass


@dataclass(eq=False)
class Need(_BuiltinRule):
    """Passes when the lead's ``needs`` share a service with ``services``."""

    services: Iterable[str] = ()

    def __post_init__(self) -> None:
        self.name = "need"
        self._check_common()
        self.services = tuple(_strings(self.name, "services", self.services))
        self._keys = frozenset(_fold(s) for s in self.services)
        self._pass = self._verdict("pass", "needs a service we sell")
        self._unknown = self._verdict("unknown", "no needs recorded", ["needs"])

    def check(self, lead: Lead) -> int:
        """Judge the lead's needs."""
        needs = lead.needs
        if not needs:
            return UNKNOWN
        keys = self._keys
        return PASS if any(_fold(n) in keys for n in needs) else FAIL

    def _explain(self, lead: Lead, code: int) -> Verdict:
        if code == UNKNOWN:
            return self._unknown
        needs = lead.needs
        return self._verdict(
            "fail",
            f"needs {_listing(sorted(needs))} match none of {_listing(self.services)}",
        )


@cache
def _subdivisions(country: str) -> dict[str, str]:
    """Names and codes of a country's subdivisions, folded, to their short code."""
    import pycountry

    table: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code=country) or ():  # type: ignore[no-untyped-call]
        short = sub.code.partition("-")[2]
        table[_fold(sub.code)] = short
        table[_fold(short)] = short
        table[_fold(sub.name)] = short
        table.setdefault(_unaccented(sub.name), short)
    return table


def _unaccented(text: str) -> str:
    """``text`` folded without its accents ("Québec" and "Quebec" are one region)."""
    decomposed = unicodedata.normalize("NFKD", _fold(text))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _short_region(country: str, region: str) -> str | None:
    """The code of the region of ``country`` named or coded ``region``, if it has one."""
    table = _subdivisions(country)
    return table.get(_fold(region)) or table.get(_unaccented(region))


def _region_key(country: str | None, region: str) -> str:
    short = None if country is None else _short_region(country, region)
    return _fold(region) if short is None else short.casefold()


@dataclass(eq=False)
class Geography(_BuiltinRule):
    """Passes when the lead's country (and region, where regions are given) is served.

    Countries are compared by ISO code ("United States", "USA" and "US" are one);
    regions by subdivision code or name where the country has them ("TX" = "Texas").
    """

    countries: Iterable[str] = ()
    regions: Iterable[str] | None = None

    def __post_init__(self) -> None:
        self.name = "geography"
        self._check_common()
        names = _strings(self.name, "countries", self.countries)
        try:
            self.countries = tuple(dict.fromkeys(normalise_country(c) for c in names))
        except ValueError as exc:
            raise ValueError(f"countries: {exc}") from None
        self._countries = frozenset(self.countries)
        # (country, region key): a region is the one of that name or code in a country
        # served ("WA" in the US is Washington, in Australia Western Australia); a region
        # no country served knows (free text) is (None, its folded text), of any of them.
        self._regions: frozenset[tuple[str | None, str]] | None = None
        if self.regions is not None:
            self.regions = tuple(_strings(self.name, "regions", self.regions))
            pairs: set[tuple[str | None, str]] = set()
            for region in self.regions:
                folded = _fold(region)
                known = [
                    (c, short.casefold())
                    for c in self.countries
                    if (short := _short_region(c, region)) is not None
                ]
                pairs.update(known or [(None, folded)])
            self._regions = frozenset(pairs)
        self._pass = self._verdict("pass", "inside the territory")
        self._no_country = self._verdict("unknown", "no country given", ["country"])
        self._no_region = self._verdict("unknown", "no region given", ["region"])

    def check(self, lead: Lead) -> int:
        """Judge the lead's country and region."""
        country = lead.country
        if country is None:
            return UNKNOWN
        if country not in self._countries:
            return FAIL
        if self._regions is not None:
            region = lead.region
            if region is None:
                return UNKNOWN
            if not self._serves(country, region):
                return FAIL
        return PASS

    def _serves(self, country: str, region: str) -> bool:
        assert self._regions is not None
        key = _region_key(country, region)
        return (country, key) in self._regions or (None, key) in self._regions

    def _explain(self, lead: Lead, code: int) -> Verdict:
        country = lead.country
        if country is None:
            return self._no_country
        if country not in self._countries:
            return self._verdict(
                "fail", f"country {country} is outside the territory ({_listing(self.countries)})"
            )
        if self._regions is not None:
            region = lead.region
            if region is None:
                return self._no_region
            if not self._serves(country, region):
                assert self.regions is not None
                return self._verdict(
                    "fail",
                    f"region {region!r} is outside the territory ({_listing(self.regions)})",
                )
        return self._pass


@dataclass(eq=False)
class CompanySize(_BuiltinRule):
    """Passes when the lead's ``employees`` is within the given bounds (inclusive)."""

    min_employees: Any = None
    max_employees: Any = None

    def __post_init__(self) -> None:
        self.name = "company_size"
        self._check_common()
        low = _number("min_employees", self.min_employees, head_count=True)
        high = _number("max_employees", self.max_employees, head_count=True)
        if low is None and high is None:
            raise ValueError("give min_employees, max_employees or both")
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_employees {low} is above max_employees {high}")
        self._low = None if low is None else int(low)
        self._high = None if high is None else int(high)
        self._pass = self._verdict("pass", "company size in range")
        self._unknown = self._verdict("unknown", "head count not known", ["employees"])

    def check(self, lead: Lead) -> int:
        """Judge the lead's head count."""
        employees = lead.employees
        if employees is None:
            return UNKNOWN
        if (self._low is not None and employees < self._low) or (
            self._high is not None and employees > self._high
        ):
            return FAIL
        return PASS

    def _explain(self, lead: Lead, code: int) -> Verdict:
        employees = lead.employees
        if employees is None:
            return self._unknown
        if self._low is not None and employees < self._low:
            return self._verdict("fail", f"{employees} employees is below the minimum {self._low}")
        if self._high is not None and employees > self._high:
            return self._verdict("fail", f"{employees} employees is above the maximum {self._high}")
        return self._pass


@dataclass(eq=False)
class Source(_BuiltinRule):
    """Passes when the lead's ``source`` is allowed (``None``: any) and not blocked."""

    allowed: Iterable[str] | None = None
    blocked: Iterable[str] = ()

    def __post_init__(self) -> None:
        self.name = "source"
        self._check_common()
        self._allowed: frozenset[str] | None = None
        if self.allowed is not None:
            self.allowed = tuple(_strings(self.name, "allowed", self.allowed))
            self._allowed = frozenset(_fold(s) for s in self.allowed)
        self.blocked = tuple(_strings(self.name, "blocked", self.blocked, allow_empty=True))
        self._blocked = frozenset(_fold(s) for s in self.blocked)
        if self.allowed is not None and self._allowed is not None:
            # A source both allowed and blocked is a contradiction the rule would settle
            # silently (blocked wins); refused, as the other rules' empty ranges are.
            both = [s for s in self.allowed if _fold(s) in self._blocked]
            if both:
                outcome = (
                    "no source can pass"
                    if self._allowed <= self._blocked
                    else "a blocked source never passes"
                )
                raise ValueError(
                    f"allowed and blocked both name {_listing(dict.fromkeys(both))}: "
                    f"{outcome}; keep each source in one list"
                )
        self._pass = self._verdict("pass", "lead source accepted")
        self._unknown = self._verdict("unknown", "no lead source given", ["source"])

    def check(self, lead: Lead) -> int:
        """Judge the lead's source."""
        source = lead.source
        if source is None:
            return UNKNOWN
        key = _fold(source)
        if key in self._blocked or (self._allowed is not None and key not in self._allowed):
            return FAIL
        return PASS

    def _explain(self, lead: Lead, code: int) -> Verdict:
        source = lead.source
        if source is None:
            return self._unknown
        key = _fold(source)
        if key in self._blocked:
            return self._verdict("fail", f"source {source!r} is blocked")
        if self._allowed is not None and key not in self._allowed:
            assert self.allowed is not None
            return self._verdict(
                "fail", f"source {source!r} is not one of {_listing(self.allowed)}"
            )
        return self._pass


class _Unset(Enum):
    """``equals`` not given (``None`` is a value it may be given). An enum member, so
    that it is still itself in a rule that was pickled (a plain ``object()`` is not)."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset.UNSET


class FieldRule(BaseRule):
    """Judges any field by name, the application's own included (config name ``field``):
    ``{"rule": "field", "field": "endpoints", "min": 20}``.

    Conditions (all given must hold): ``min`` and ``max`` (inclusive), ``equals``,
    ``in`` (``one_of`` from Python; a config writes ``in``), ``exists`` (True: the field
    must have a value; False: it must be empty). Strings compare case-insensitively, as
    the other rules'. The bounds are read as the lead model reads the field (its type
    and its own validators): ``min = "20"`` for a number of employees is 20,
    ``max = "2027-12-31"`` for a date is that day, ``in = ["(512) 555-0100"]`` for the
    phone is +15125550100 (a number without its country code read in the default
    region, US), and a bound that cannot be one is a :class:`~leadfunnel.ConfigError`,
    as is a date and time without a UTC offset for a field of aware times (it could be
    compared with no lead's). ``min`` and ``max`` order an enum field's members as the
    enum declares them (interest: none < slight < high). A field of :class:`Lead` is
    checked when the rule is made; a field of the application's own lead class when the
    rule meets it (a funnel checks its lead model when it is made). A number that is not
    finite (NaN, infinity) is refused as any condition. On a set field (``tags``,
    ``needs``), ``equals`` and ``in`` hold when the set holds the value, or one of the
    values. A field of lists, mappings or nested models is judged whole: ``equals``
    and ``in`` compare its value by equality (strings within it case-insensitively),
    and ``min`` and ``max`` on a field whose values have no order (a mapping, a nested
    model) are a :class:`~leadfunnel.ConfigError`. An empty field (``None``, blank
    text, an empty set, list or mapping, a float that is not a number) is ``unknown``
    (with the field in ``missing``), unless ``exists`` decides; a value that cannot be
    compared with a bound fails, saying why.
    """

    name = "field"

    def __init__(
        self,
        field: str,
        *,
        min: Any = None,
        max: Any = None,
        equals: Any = _UNSET,
        one_of: Iterable[Any] | None = None,
        exists: bool | None = None,
        hard: bool = False,
        weight: float = 1.0,
    ) -> None:
        with _config_errors(lambda: "field"):
            self._configure(field, min, max, equals, one_of, exists, hard, weight)

    def _configure(
        self,
        field: str,
        min: Any,
        max: Any,
        equals: Any,
        one_of: Iterable[Any] | None,
        exists: bool | None,
        hard: bool,
        weight: float,
    ) -> None:
        super().__init__(hard=hard, weight=weight)
        if not isinstance(field, str) or not field.isidentifier():
            raise ValueError(f"field must name a field (an identifier), not {field!r}")
        if field.startswith("model_") or hasattr(BaseModel, field):
            raise ValueError(
                f"field {field!r} is pydantic's own attribute of every model, not a field "
                "of a lead; name a field"
            )
        if equals is None:
            raise ValueError(
                "equals = None lets nothing pass (an empty field is judged unknown); to "
                "want the field empty, write exists = false"
            )
        if exists is not None and not isinstance(exists, bool):
            raise TypeError(f"exists must be true or false, not {exists!r}")
        if isinstance(one_of, str) or (one_of is not None and not isinstance(one_of, Iterable)):
            raise TypeError(f"in must be a list of values, not {one_of!r}")
        self.field = field
        self.min, self.max, self.equals, self.exists = min, max, equals, exists
        self.one_of = None if one_of is None else tuple(one_of)
        if self.one_of == ():
            raise ValueError("in = [] lets nothing pass: give the values a lead may have")
        if (min, max, one_of, exists) == (None, None, None, None) and equals is _UNSET:
            raise ValueError("give at least one of min, max, equals, in or exists")
        if exists is False and ((min, max, one_of) != (None, None, None) or equals is not _UNSET):
            raise ValueError("exists=false wants the field empty: give no other condition")
        for name, value in (("min", min), ("max", max), ("equals", equals)):
            _check_finite(name, value)
        for value in self.one_of or ():
            _check_finite("in", value)
        if not isinstance(min, str) and not isinstance(max, str):
            self._check_range(min, max)  # text ("9", "10") is compared once read as values
        # The conditions read as each lead class's field type (see conditions_for).
        self._typed: dict[type[Lead], _Conditions] = {}
        if field in Lead.model_fields:
            # A field every lead has: its bounds are read, and checked, now (a field of
            # the application's own lead class is, when the rule meets that class).
            self.conditions_for(Lead)

    @classmethod
    def from_config(cls, **arguments: Any) -> FieldRule:
        """Build from a config's arguments (where ``in`` is a keyword Python lacks)."""
        if "one_of" in arguments:
            raise TypeError(
                "got an unexpected keyword argument 'one_of': in a config the condition is "
                "called 'in' (one_of is its name in Python); write 'in'"
            )
        if "in" in arguments:
            arguments["one_of"] = arguments.pop("in")
        return cls(**arguments)

    def conditions_for(self, model: type[Lead]) -> _Conditions:
        """The rule's conditions read as ``model``'s field type: a
        :class:`~leadfunnel.ConfigError` if the model has no such field or a bound cannot
        be a value of it. (A funnel calls this when it is made.)"""
        found = self._typed.get(model)
        if found is None:
            found = self._typed[model] = self._read(model)
        return found

    def _read(self, model: type[Lead]) -> _Conditions:
        info = model.model_fields.get(self.field)
        if info is None and isinstance(getattr(model, self.field, None), property):
            # An attribute that is no field (full_name): judged as it reads.
            return _Conditions.of(False, self.min, self.max, self.equals, self.one_of)
        if info is None:
            raise _lacking_field_error(
                f"rule 'field' names {self.field!r}, which {model.__name__} has no field called"
            )
        is_set = _is_set(info.annotation)
        as_value = _FieldReader(model, self.field, info.annotation, is_set)

        def read(name: str, bound: Any) -> Any:
            if bound is None or bound is _UNSET:
                return bound
            try:
                value = as_value(bound)
            except ValidationError as exc:
                raise ConfigError(
                    f"rule 'field' on {self.field!r}: {name}={bound!r} is not a value of "
                    f"the field ({_problem(exc, self.field)}); give one of its type"
                ) from None
            if isinstance(value, datetime) and value.utcoffset() is None:
                self._refuse_naive(name, bound, value, as_value)
            return value

        if is_set and (self.min is not None or self.max is not None):
            raise ConfigError(
                f"rule 'field' on {self.field!r}: min and max compare one value, and "
                f"{self.field} is a set of them; use equals or in"
            )
        low, high = read("min", self.min), read("max", self.max)
        for name, bound in (("min", low), ("max", high)):
            if bound is not None and not _orderable(bound):
                raise ConfigError(
                    f"rule 'field' on {self.field!r}: min and max order values, and "
                    f"{self.field} holds {type(bound).__name__} values, which have no "
                    f"order ({name}={_shown(bound)}); use equals, in or exists"
                )
        self._check_range(low, high)
        one_of = None if self.one_of is None else tuple(read("in", v) for v in self.one_of)
        conditions = _Conditions.of(is_set, low, high, read("equals", self.equals), one_of)
        if (
            not is_set
            and conditions.equals is not _UNSET
            and conditions.one_of_keys is not None
            and not _holds(conditions.one_of_keys, conditions.equals_key)
        ):
            raise ConfigError(
                f"rule 'field' on {self.field!r}: equals {_shown(conditions.equals)} is not "
                f"one of in ({_shown(conditions.one_of)}): nothing passes; keep one of them"
            )
        return conditions

    def _refuse_naive(
        self, name: str, bound: Any, value: datetime, as_value: Callable[[Any], Any]
    ) -> None:
        """A ConfigError for a bound without a UTC offset (``"2026-01-01"``) on a field
        that holds times with one: an aware time and a naive one cannot be compared, so
        the rule would fail every lead. (A field of naive times, ``NaiveDatetime``,
        refuses the aware time and keeps the bound.)"""
        aware = value.replace(tzinfo=_UTC)
        try:
            as_value(aware)
        except ValidationError:
            return
        raise ConfigError(
            f"rule 'field' on {self.field!r}: {name}={bound!r} has no UTC offset, and "
            f"{self.field} takes times with one, as every leadfunnel time is: the rule "
            f"could not compare it with them and would fail every lead; give the offset, "
            f'e.g. {name} = "{aware.isoformat()}" (a field of times without one is '
            "typed NaiveDatetime)"
        )

    @staticmethod
    def _check_range(low: Any, high: Any) -> None:
        try:
            empty = low is not None and high is not None and _ordered(low) > _ordered(high)
        except TypeError:
            return  # compared once read as the field's type
        if empty:
            raise ValueError(f"min {_shown(low)} is above max {_shown(high)}: nothing passes")

    def evaluate(self, lead: Lead) -> Verdict:
        """Judge the lead's ``field``."""
        name = self.field
        if name not in type(lead).model_fields:
            value = getattr(lead, name, _UNSET)
            if value is _UNSET:
                self.conditions_for(type(lead))  # a ConfigError: no such field
            # An attribute that is no field (a property, say): judged as given.
            conditions = _Conditions.of(
                _is_set_value(value), self.min, self.max, self.equals, self.one_of
            )
        else:
            value = getattr(lead, name)
            conditions = self.conditions_for(type(lead))
        if _empty(value):
            if self.exists is True:
                return Verdict.failed(f"no {name} given")
            if self.exists is False:
                return Verdict.passed(f"no {name}, as required")
            return Verdict.unknown(f"no {name} given", missing=[name])
        if self.exists is False:
            return Verdict.failed(f"{name} is {_shown(value)}; it must be empty")
        low, high = conditions.min, conditions.max
        if low is not None or high is not None:
            compared = _ordered(value)
            try:
                if low is not None and compared < conditions.min_key:
                    return Verdict.failed(f"{name} {_shown(value)} is below {_shown(low)}")
                if high is not None and compared > conditions.max_key:
                    return Verdict.failed(f"{name} {_shown(value)} is above {_shown(high)}")
            except TypeError:
                return Verdict.failed(
                    f"{name} {_shown(value)} cannot be compared with the bounds"
                    f"{_why_not_compared(value)}"
                )
        # A set's items are hashable; a value of another field may not be (a list, a
        # mapping, a nested model), and is compared by equality (see _holds).
        held: Collection[Any] = (
            {_same(v) for v in cast(Iterable[Any], value)} if conditions.is_set else (_same(value),)
        )
        if conditions.equals is not _UNSET and not _holds(held, conditions.equals_key):
            if conditions.is_set:
                return Verdict.failed(f"{name} ({_shown(value)}) lack {_shown(conditions.equals)}")
            return Verdict.failed(f"{name} is {_shown(value)}, not {_shown(conditions.equals)}")
        keys = conditions.one_of_keys
        if keys is not None and not any(_holds(keys, key) for key in held):
            return Verdict.failed(
                f"{name} {_shown(value)} is not one of {_shown(conditions.one_of)}"
                if not conditions.is_set
                else f"{name} ({_shown(value)}) hold none of {_shown(conditions.one_of)}"
            )
        return Verdict.passed(f"{name} {_shown(value)} meets the profile")


def _lacking_field_error(problem: str) -> ConfigError:
    """The :class:`~leadfunnel.ConfigError` of a ``field`` rule naming a field the lead
    class lacks: ``problem`` (what is wrong) and the advice in Python's words
    (``Funnel(..., lead_model=...)``). The problem alone is kept for a caller that gives
    the advice in its own words (the command line's ``--lead-model``): see
    :func:`_lacked_field_problem`."""
    error = ConfigError(
        f"{problem}; fix the name, or give the funnel the lead model that has it "
        "(Funnel(..., lead_model=...))"
    )
    vars(error)[_LACKED] = problem
    return error


def _lacked_field_problem(error: BaseException) -> str | None:
    """The problem, without its advice, of ``error`` when it is the error
    :func:`_lacking_field_error` made; otherwise ``None``."""
    problem = vars(error).get(_LACKED)
    return problem if isinstance(problem, str) else None


#: The attribute of a :func:`_lacking_field_error` holding its problem alone.
_LACKED = "_lacked_field_problem"


@dataclass(frozen=True, slots=True)
class _Conditions:
    """A :class:`FieldRule`'s conditions as values of its field's type, with ``min`` and
    ``max`` also as ordered (:func:`_ordered`) and ``equals`` and ``one_of`` as compared
    (:func:`_same`), made once rather than per lead."""

    is_set: bool
    min: Any
    max: Any
    equals: Any
    one_of: tuple[Any, ...] | None
    min_key: Any
    max_key: Any
    equals_key: Any
    #: A frozenset, or a tuple where a value cannot be hashed (a list, a mapping, a
    #: nested model: compared by equality, see :func:`_holds`).
    one_of_keys: frozenset[Any] | tuple[Any, ...] | None

    @classmethod
    def of(
        cls, is_set: bool, low: Any, high: Any, equals: Any, one_of: tuple[Any, ...] | None
    ) -> _Conditions:
        keys = None if one_of is None else _keys(map(_same, one_of))
        low_key = None if low is None else _ordered(low)
        high_key = None if high is None else _ordered(high)
        return cls(is_set, low, high, equals, one_of, low_key, high_key, _same(equals), keys)


class _FieldReader:
    """Reads a bound as ``model`` reads its ``field``: the field's type, its own
    validators (a phone becomes E.164, an e-mail's domain lower-cased) and the model's
    settings (spaces stripped), so that a bound is what a lead's value would be. An
    element of a set field is read as a one-element set of the field.

    A phone without its country code is read in the default region (US), as
    ``Lead(phone=...)`` reads it: a rule is made before, and apart from, the funnel
    whose ``phone_region`` would say otherwise.
    """

    __slots__ = ("_fallback", "_field", "_is_set", "_model")

    def __init__(self, model: type[Lead], field: str, annotation: Any, is_set: bool) -> None:
        self._model = model
        self._field = field
        self._is_set = is_set
        self._fallback = _adapter(_element_type(annotation) if is_set else annotation)

    def __call__(self, bound: Any) -> Any:
        given = [bound] if self._is_set else bound
        try:
            # The model's own validation of one field, on a record made without it
            # (validate_assignment writes the value into the record it is given).
            read = self._model.__pydantic_validator__.validate_assignment(
                self._model.model_construct(), self._field, given
            )
        except ValidationError as exc:
            if any(_is_of(error, self._field) for error in exc.errors()):
                raise  # the field refused the bound
            # The model as a whole refused the record made without values (a model
            # validator of the application's own): the field's type alone reads it.
            return self._fallback.validate_python(bound)
        except Exception:
            # An application's validator that needs the record's other values.
            return self._fallback.validate_python(bound)
        value = getattr(read, self._field)
        if not self._is_set:
            return value
        items = list(value)
        if len(items) != 1:  # a validator that drops or adds items: read as the type
            return self._fallback.validate_python(bound)
        return items[0]


def _is_of(error: Any, field: str) -> bool:
    """Whether a validation error is the field's own (not the model's, nor a frozen
    field's refusal to be assigned)."""
    location: tuple[Any, ...] = tuple(error.get("loc") or ())
    return location[:1] == (field,) and error.get("type") != "frozen_field"


def _problem(exc: ValidationError, field: str) -> str:
    """What a field said was wrong with a value: its first error's message."""
    errors = exc.errors(include_url=False)
    own = [e for e in errors if _is_of(e, field)] or errors
    return str(own[0]["msg"]).removeprefix("Value error, ")


def _check_finite(name: str, value: Any) -> None:
    if not _finite(value):
        raise ValueError(
            f"{name} must be a finite number, not {value}; give a number the field can hold"
        )


def _empty(value: Any) -> bool:
    """No value: ``None``, blank text, an empty set, list or mapping, a float that is
    not a number."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (set, frozenset, list, tuple, Mapping)):
        return not value
    return isinstance(value, float) and math.isnan(value)


def _is_set(annotation: Any) -> bool:
    return get_origin(_without_none(annotation)) in (set, frozenset)


def _is_set_value(value: Any) -> bool:
    return isinstance(value, (set, frozenset))


def _element_type(annotation: Any) -> Any:
    arguments = get_args(_without_none(annotation))
    return arguments[0] if arguments else Any


def _without_none(annotation: Any) -> Any:
    """``X`` of ``X | None``."""
    arguments = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(arguments) == 1:
        return arguments[0]
    return annotation


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _shown(value: Any) -> str:
    """A value as a reason shows it: text as it is, an enum by its value, a date in ISO
    form, a decimal as digits, a set or list of values comma-separated."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (set, frozenset)):
        return ", ".join(sorted(_shown(v) for v in value)) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, BaseModel):
        return repr(value)  # Addr(street='x'): its str() leaves the class out
    return str(value)


def _same(value: Any) -> Any:
    """A value as compared by :class:`FieldRule`: strings folded, those in a list, a
    tuple or a mapping's values too."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return _fold(value)
    if type(value) is list:
        return [_same(item) for item in value]
    if type(value) is tuple:
        return tuple(_same(item) for item in value)
    if type(value) is dict:
        return {key: _same(item) for key, item in value.items()}
    return value


def _keys(values: Iterable[Any]) -> frozenset[Any] | tuple[Any, ...]:
    """``values`` to look values up in: a frozenset, or a tuple where one cannot be
    hashed (a list, a mapping, a nested model), which :func:`_holds` scans."""
    found = tuple(values)
    try:
        return frozenset(found)
    except TypeError:
        return found


def _holds(values: Collection[Any], value: Any) -> bool:
    """Whether ``value`` is among ``values``, by equality (a value that cannot be
    hashed is compared with each: a list, a mapping, a nested model)."""
    try:
        return value in values
    except TypeError:  # an unhashable value looked up in a set
        return any(value == item for item in values)


def _orderable(value: Any) -> bool:
    """Whether ``min`` and ``max`` can order values such as ``value`` (a mapping or a
    nested model has no order)."""
    key = _ordered(value)
    try:
        key <= key  # noqa: B015 (the comparison is the test)
    except TypeError:
        return False
    return True


def _ordered(value: Any) -> Any:
    """A value as ``min`` and ``max`` order it: an enum member by its place in its enum,
    the order it is declared in (interest: none < slight < high), not alphabetically
    ("high" < "none" < "slight"); a member of an ``IntEnum`` by its number, as Python
    orders them; anything else as :func:`_same` compares it."""
    if isinstance(value, Enum) and not isinstance(value, int):
        rank = _ranks(type(value)).get(value)
        if rank is not None:
            return rank
    return _same(value)


@cache
def _ranks(enum: type[Enum]) -> dict[Enum, int]:
    """Each member of ``enum`` (aliases are their member) to its place in the enum."""
    return {member: place for place, member in enumerate(enum)}


def _why_not_compared(value: Any) -> str:
    """The end of the reason for a value no bound can be compared with: a time without
    a UTC offset says so (the bounds of a field of aware times have one)."""
    if isinstance(value, datetime) and value.utcoffset() is None:
        return " (it has no UTC offset, and they have one: store times with their offset)"
    return ""


# --- registry -------------------------------------------------------------------------

#: What :func:`register_rule` takes: a rule class, or any callable that builds a rule from
#: the keyword arguments of a profile's config.
RuleFactory = Callable[..., Rule]

_BUILTINS: dict[str, RuleFactory] = {
    "niche": Niche,
    "authority": Authority,
    "money": Money,
    "need": Need,
    "geography": Geography,
    "company_size": CompanySize,
    "source": Source,
    "field": FieldRule.from_config,
}
_registered: dict[str, RuleFactory] = {}

#: The arguments a config writes under another name than the rule class's Python one.
_CONFIG_SPELLING: dict[type, dict[str, str]] = {FieldRule: {"one_of": "in"}}


def register_rule(name: str, factory: RuleFactory, *, replace: bool = False) -> None:
    """Make ``factory`` (a rule class, or a callable returning a rule) nameable in configs.

    Plugins normally register through the ``leadfunnel.rules`` entry-point group
    instead; this is for rules defined in the application itself (a name registered
    here is used before a plugin's of the same name). A name already registered to
    another factory is a :class:`~leadfunnel.ConfigError` (two rules under one name:
    configs would get whichever came last), unless ``replace=True``. Registering the
    same factory again is no clash, nor is registering the class or function a module
    defines again when the module runs a second time (``importlib.reload``, a module run
    as a script and also imported): that is one definition, and its newest version is
    kept.
    """
    if not name or not isinstance(name, str) or name != name.strip():
        raise ConfigError(f"a rule needs a non-empty name without spaces around it, not {name!r}")
    if not callable(factory):
        raise ConfigError(
            f"rule {name!r}: register a rule class or a callable that builds the rule from "
            f"a config's arguments, not {factory!r}"
        )
    if name in _BUILTINS:
        raise ConfigError(f"{name!r} is a built-in rule; register yours under another name")
    earlier = _registered.get(name)
    if earlier is not None and not replace and not _one_definition(earlier, factory):
        if _factory_name(earlier) == _factory_name(factory):
            raise ConfigError(
                f"rule {name!r} is already registered, to another {_factory_name(factory)} "
                "(a class or function defined inside a function is a new one each time the "
                "function runs); register it once, or pass replace=True to replace it"
            )
        raise ConfigError(
            f"rule {name!r} is already registered, to {_factory_name(earlier)}; register "
            f"{_factory_name(factory)} under another name, or pass replace=True to replace it"
        )
    _registered[name] = factory


def _one_definition(earlier: Any, factory: Any) -> bool:
    """Whether two factories are one: the same object, or the same class or function
    defined again by its module running a second time (a reload, a script that is also
    imported): the same source file (or module) and the same qualified name, one that
    names it from the module's top level (a class made inside a function is not one)."""
    if earlier == factory:
        return True
    origin = _definition(factory)
    return origin is not None and origin == _definition(earlier)


def _definition(factory: Any) -> tuple[str, str] | None:
    if not (isinstance(factory, type) or inspect.isfunction(factory)):
        return None  # a bound method, a partial: other arguments make another factory
    qualified = getattr(factory, "__qualname__", None)
    module_name = getattr(factory, "__module__", None)
    if not isinstance(qualified, str) or "<" in qualified or not isinstance(module_name, str):
        return None
    # A script run as __main__ and also imported by name is one file, two module names.
    path = getattr(sys.modules.get(module_name), "__file__", None)
    return (os.path.realpath(path) if isinstance(path, str) else module_name, qualified)


def _factory_name(factory: Any) -> str:
    module = getattr(factory, "__module__", None)
    qualified = getattr(factory, "__qualname__", None)
    return f"{module}.{qualified}" if module and qualified else repr(factory)


def _entry_point_factory(name: str) -> RuleFactory | None:
    # Imported on first need: with no model built yet, nothing else at import time
    # loads importlib.metadata (email, zipfile...), about 10% of ``import leadfunnel``.
    from importlib.metadata import entry_points

    # One entry point per target: a package found twice on the path is one plugin.
    points = list({p.value: p for p in entry_points(group=ENTRY_POINT_GROUP, name=name)}.values())
    if len(points) > 1:
        # Which one entry_points() lists first depends on the order of the path and of
        # the installs: a config must not be judged by whichever that is.
        raise ConfigError(
            f"rule {name!r} is declared by {len(points)} installed plugins: "
            f"{' and '.join(_provider(p) for p in points)}; uninstall the one you do not "
            f"mean, or register the one you mean in the application "
            f"(leadfunnel.rules.register_rule({name!r}, factory)), which configs then use"
        )
    for point in points:
        try:
            factory: RuleFactory = point.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise ConfigError(
                f"rule {name!r} is registered by entry point {point.value!r}, "
                f"which failed to load: {exc}"
            ) from exc
        return factory
    return None


def _provider(point: EntryPoint) -> str:
    """An entry point as a person finds it: its package, version and target."""
    dist = point.dist
    return point.value if dist is None else f"{dist.name} {dist.version} ({point.value})"


def _shadowing_plugins(name: str) -> str:
    """What a built-in rule's refusal adds when installed plugins declare ``name`` too:
    a config meant for such a plugin's rule reaches the built-in (as register_rule
    refuses a built-in's name), whose arguments differ. Asked only on that refusal:
    reading every package's entry points costs milliseconds, which building a
    built-in rule need not pay."""
    from importlib.metadata import entry_points

    providers = [_provider(p) for p in entry_points(group=ENTRY_POINT_GROUP, name=name)]
    if not providers:
        return ""
    return (
        f" (plugin {', '.join(providers)} also declares a rule named {name!r}: configs get "
        f"the built-in {name!r}, never the plugin's; register the plugin's rule under "
        "another name with leadfunnel.rules.register_rule('other_name', factory), and ask "
        "its authors to rename it)"
    )


def available_rules() -> list[str]:
    """The names a config file can use: built-in, registered and plugin rules."""
    from importlib.metadata import entry_points

    names = set(_BUILTINS) | set(_registered)
    names.update(point.name for point in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def make_rule(name: str, /, **arguments: Any) -> Rule:
    """Build the rule called ``name`` in a config file from its arguments.

    ``name`` is positional only: a rule whose factory takes a ``name`` of its own (a
    plugin's label for the rule) is given it from the config, as any other argument.
    Raises :class:`ConfigError` for an unknown rule or a wrong argument.
    """
    built_in = _BUILTINS.get(name)
    factory = built_in or _registered.get(name) or _entry_point_factory(name)
    if factory is None:
        raise ConfigError(
            f"unknown rule {name!r}; available rules: {', '.join(available_rules())} "
            f"(plugins register under the {ENTRY_POINT_GROUP!r} entry-point group)"
        )
    try:
        rule = factory(**arguments)
    except (TypeError, ValueError) as exc:
        problem = _argument_problem(exc) if isinstance(exc, TypeError) else str(exc)
        problem += _arguments_taken(name, factory, arguments, problem)
        if "name" in arguments and "keyword argument 'name'" in problem:
            problem += (
                f"; a rule is named by its 'rule' key (rule = {name!r}), and this one takes "
                "no name of its own: remove 'name'"
            )
        if built_in is not None:
            problem += _shadowing_plugins(name)
        raise ConfigError(_of_rule(name, problem)) from None
    except Exception as exc:  # a plugin's own mistake about its arguments (KeyError...)
        raise ConfigError(
            _of_rule(
                name,
                f"its factory {_factory_name(factory)} failed on these arguments: "
                f"{type(exc).__name__}: {exc}; check the rule's arguments in the config",
            )
        ) from exc
    if not callable(getattr(rule, "evaluate", None)) or not isinstance(
        getattr(rule, "name", None), str
    ):
        raise ConfigError(
            f"rule {name!r}: its factory made {rule!r}, which has no name or evaluate(lead)"
        )
    return rule


def _arguments_taken(
    name: str, factory: RuleFactory, arguments: Mapping[str, Any], problem: str
) -> str:
    """For an argument the rule ``name`` does not take: the closest it takes, if one is
    close, and the arguments it takes (from its factory's signature, as a config writes
    them); otherwise nothing. An argument the factory's signature does take is left
    alone: the error came from within it."""
    unexpected = re.search(r"unexpected keyword argument '([^']*)'$", problem)
    if unexpected is None or unexpected.group(1) not in arguments:
        return ""
    taken = _config_arguments(factory)
    if taken is None or unexpected.group(1) in taken:
        return ""
    if not taken:
        return f"; rule {name!r} takes no arguments"
    close = difflib.get_close_matches(unexpected.group(1), taken, n=1)
    meant = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{meant}; rule {name!r} takes: {', '.join(taken)}"


def _config_arguments(factory: Any) -> list[str] | None:
    """The arguments a config may give ``factory``, in its signature's order, as a
    config writes them (``in`` for :class:`FieldRule`'s ``one_of``); ``None`` when the
    signature cannot tell (it takes ``**kwargs``, or has none to read). A class's
    ``from_config(**arguments)`` takes the class's own arguments."""
    owner = getattr(factory, "__self__", None)
    try:
        parameters = inspect.signature(factory).parameters.values()
        if isinstance(owner, type) and any(p.kind is p.VAR_KEYWORD for p in parameters):
            parameters = inspect.signature(owner).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    spelling = _CONFIG_SPELLING.get(owner, {}) if isinstance(owner, type) else {}
    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [spelling.get(p.name, p.name) for p in parameters if p.kind in keywords]


def _of_rule(name: str, problem: str) -> str:
    """``problem`` said of the rule ``name`` (once: a message may name it already)."""
    return problem if problem.startswith(f"rule {name!r}") else f"rule {name!r}: {problem}"


def _argument_problem(exc: TypeError) -> str:
    text = str(exc)
    # "Niche.__init__() got an unexpected keyword argument 'x'" -> the useful part.
    return re.sub(r"^[\w.]*__init__\(\) ", "", text)


def _rule_name(rule: Any) -> str:
    """A rule's name, for configs and verdicts."""
    return str(getattr(rule, "name", type(rule).__name__))


def _with_rule(verdict: Verdict, name: str) -> Verdict:
    """``verdict`` with its ``rule`` set to ``name`` (when the rule left it out)."""
    return verdict if verdict.rule == name else replace(verdict, rule=name)
