"""Lead routing: who owns a new lead, and who backs an owner up.

:class:`RoutingRules` is a :class:`~leadfunnel.Router`: ordered :class:`Route` rules
(territory, company size, source, profile, tags) send a lead to an :class:`OwnerGroup`;
within the group owners take turns in proportion to their weights (smooth weighted
round-robin: equal weights are plain round-robin), skipping anyone marked unavailable
or at their daily capacity; each group names a backup, who takes the leads when every
owner is out or full, and overdue follow-ups (``FollowUp.escalated_to``).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from os import PathLike
from types import MappingProxyType
from typing import Any, Protocol
from uuid import UUID

from ._clock import Clock, SystemClock
from ._errors import ConfigError
from ._models import Contact, Event, Lead, normalise_country
from ._qualification import lead_field, shown_name
from ._toml import read_toml

__all__ = ["OwnerGroup", "Route", "RoutingRules"]


def _names(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{where}: {key} must be a list of strings, not {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{where}: {key} must be a list of non-empty strings, has {item!r}")
    return tuple(item.strip() for item in items)


def _condition(where: str, key: str, value: Any) -> tuple[str, ...]:
    """A route's condition: a list of strings, at least one (none could match no lead)."""
    values = _names(where, key, value)
    if not values:
        raise ConfigError(
            f"{where}: {key} is an empty list, which no lead could match; list the "
            f"values to accept, or leave {key} out to accept every lead"
        )
    return values


def _fold(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.casefold() for v in values)


@dataclass(frozen=True)
class OwnerGroup:
    """A team that shares leads in turn: its ``owners`` and the ``backup`` who covers.

    ``capacity`` maps an owner (or the backup) to the most new leads the router gives
    them per day (the funnel clock's UTC day); an owner at capacity is skipped like an
    unavailable one. ``weights`` maps an owner to their share of turns (default 1
    each): with ``{"ana": 2}``, ana gets two leads for each one of the others. Both are
    kept as read-only mappings, empty when not given.
    """

    name: str
    owners: Sequence[str]
    backup: str | None = None
    capacity: Mapping[str, int] | None = field(default=None, hash=False)
    weights: Mapping[str, float] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"owner group: name must be a non-empty string, not {self.name!r}")
        where = f"owner group {self.name!r}"
        named = _names(where, "owners", self.owners)
        owners = tuple(_owner_name(where, "owners", owner) for owner in named)
        if not owners:
            raise ConfigError(f"{where}: owners is empty; list at least one owner")
        if len(set(owners)) != len(owners):
            raise ConfigError(f"{where}: owners lists someone twice: {list(owners)}")
        object.__setattr__(self, "owners", owners)
        if self.backup is not None:
            if not isinstance(self.backup, str) or not self.backup.strip():
                raise ConfigError(f"{where}: backup must be an owner's name or None")
            object.__setattr__(self, "backup", _owner_name(where, "backup", self.backup))
        members = (*owners, self.backup) if self.backup is not None else owners
        capacity = _per_owner(where, "capacity", self.capacity, members, _leads_per_day)
        weights = _per_owner(where, "weights", self.weights, owners, _share)
        object.__setattr__(self, "capacity", MappingProxyType(capacity))
        object.__setattr__(self, "weights", MappingProxyType(weights))

    def weight(self, owner: str) -> float:
        """``owner``'s share of turns (1 unless ``weights`` says otherwise)."""
        assert self.weights is not None  # set in __post_init__
        return self.weights.get(owner, 1)

    def capacity_of(self, owner: str) -> int | None:
        """The most leads ``owner`` is given per day in this group (``None``: no limit)."""
        assert self.capacity is not None  # set in __post_init__
        return self.capacity.get(owner)


def _owner_name(where: str, key: str, name: str) -> str:
    """``name`` as a lead's ``owner`` field takes it, or a :class:`ConfigError`: the
    router records it on each lead it gives that owner, so a name the field refuses (too
    long, a control character) would be a lead no read accepts."""
    valid = lead_field(
        "owner",
        name,
        lambda problem: (
            f"{where}: {key} names {shown_name(name)}, which cannot be recorded as a "
            f"lead's owner: {problem}; correct the name in the group (the router records "
            "it on each lead it routes, as Lead.owner)"
        ),
    )
    assert valid is not None  # blank names are refused before
    return valid


def _leads_per_day(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return "must be a whole number of leads per day >= 0"
    return None


def _share(value: Any) -> str | None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        return "must be a number above 0 (a share of turns; mark an owner unavailable instead)"
    return None


def _per_owner(
    where: str,
    key: str,
    value: Any,
    members: Sequence[str],
    problem: Any,
) -> dict[str, Any]:
    """``value`` (a mapping from members to numbers, or ``None``) checked and copied."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key} must map owners to numbers, not {value!r}")
    checked: dict[str, Any] = {}
    for owner, number in value.items():
        if owner not in members:
            raise ConfigError(
                f"{where}: {key} names {owner!r}, who is not "
                + ("an owner" if key == "weights" else "an owner or the backup")
                + f" of the group; the group has: {', '.join(members)}"
            )
        reason = problem(number)
        if reason is not None:
            raise ConfigError(f"{where}: {key}[{owner!r}] {reason}, not {number!r}")
        checked[owner] = number
    return checked


@dataclass(frozen=True)
class Route:
    """Send leads matching every given condition to ``group``.

    Each condition is a list of acceptable values (any one matches); a condition left
    out matches everyone, and a lead without the field does not match a condition on it.
    ``countries`` are ISO codes or names; ``regions``, ``sources``, ``profiles`` and
    ``tags`` compare case-insensitively; ``postal_codes`` are prefixes; company size
    is ``min_employees <= employees <= max_employees``. A funnel routes a lead when it
    arrives, before it is qualified: ``profiles`` matches only when the application
    asks the router itself for a qualified lead (a hand-off, see docs/cadence.md).
    """

    group: str
    countries: Sequence[str] | None = None
    regions: Sequence[str] | None = None
    postal_codes: Sequence[str] | None = None
    min_employees: int | None = None
    max_employees: int | None = None
    sources: Sequence[str] | None = None
    profiles: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        where = f"route {self.name or self.group!r}"
        if not isinstance(self.group, str) or not self.group:
            raise ConfigError(f"{where}: group must be a group's name, not {self.group!r}")
        if self.countries is not None:
            codes = []
            for value in _condition(where, "countries", self.countries):
                try:
                    codes.append(normalise_country(value))
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            object.__setattr__(self, "countries", tuple(codes))
        for key in ("regions", "postal_codes", "sources", "profiles", "tags"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, _condition(where, key, value))
        for key in ("min_employees", "max_employees"):
            value = getattr(self, key)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ConfigError(f"{where}: {key} must be a whole number >= 0, not {value!r}")
        if (
            self.min_employees is not None
            and self.max_employees is not None
            and self.min_employees > self.max_employees
        ):
            raise ConfigError(
                f"{where}: min_employees {self.min_employees} is above "
                f"max_employees {self.max_employees}"
            )

    def matches(self, person: Lead | Contact) -> bool:
        """Whether ``person`` meets every condition of this route."""
        if self.countries is not None and person.country not in self.countries:
            return False
        if self.regions is not None and (
            person.region is None or person.region.casefold() not in _fold(self.regions)
        ):
            return False
        if self.postal_codes is not None and (
            person.postal_code is None
            or not any(
                person.postal_code.replace(" ", "").upper().startswith(p.replace(" ", "").upper())
                for p in self.postal_codes
            )
        ):
            return False
        if self.min_employees is not None or self.max_employees is not None:
            size = person.employees
            if size is None:
                return False
            if self.min_employees is not None and size < self.min_employees:
                return False
            if self.max_employees is not None and size > self.max_employees:
                return False
        if self.sources is not None and (
            person.source is None or person.source.casefold() not in _fold(self.sources)
        ):
            return False
        if self.profiles is not None:
            profile = getattr(person, "profile", None)
            if profile is None or profile.casefold() not in _fold(self.profiles):
                return False
        return self.tags is None or bool(_fold(person.tags) & _fold(self.tags))


_GROUP_KEYS = ("name", "owners", "backup", "capacity", "weights")

_ROUTE_KEYS = (
    "group",
    "name",
    "countries",
    "regions",
    "postal_codes",
    "min_employees",
    "max_employees",
    "sources",
    "profiles",
    "tags",
)


class _FunnelLike(Protocol):
    """What :meth:`RoutingRules.attach` needs of a funnel: its clock and its event feed."""

    clock: Clock

    def events(self, after: int = 0, limit: int | None = 1000) -> list[Event]: ...

    def last_position(self) -> int: ...


class RoutingRules:
    """A router: ordered routes to owner groups, weighted turns, capacities, backups.

    ``assign(lead)`` takes the first route the lead matches (else the ``default``
    group; else nobody) and gives the lead to the group's next owner in turn, skipping
    owners marked unavailable and owners who reached their ``capacity`` today. Turns
    follow the group's ``weights`` (smooth weighted round-robin: an owner of weight 2
    gets two leads for each one of an owner of weight 1, interleaved; equal weights
    are plain round-robin). If no owner can take the lead, the backup takes it when
    available and under capacity; otherwise the lead stays unassigned.

    A day is the UTC day of ``clock`` (the funnel's clock once :meth:`use_clock` or
    :meth:`attach` gave it; the system's UTC clock until then); the counts restart
    when the day changes. They count the leads this router assigned: through a funnel,
    only those stored (see :meth:`reserve`: a change rolled back or refused gives the
    owner's capacity and turn back), each recorded with its lead (see
    :meth:`arrival_data`); a process that starts mid-day catches up with
    :meth:`attach`. ``backup_for(owner)`` names the backup of the owner's group (or, if
    the backup is the owner or unavailable, another available owner of the group);
    capacity does not apply to escalations. Safe to share between threads.

    The counts (and the turns) live in the router's memory: one process never gives an
    owner more than their capacity, but routers in several processes on one store do
    not see each other's leads until :meth:`attach` is called again, and together may
    give an owner more, by what the others gave since. Route in one process, or call
    :meth:`attach` again from time to time (it then reads only the events committed
    since its last call).
    """

    def __init__(
        self,
        groups: Iterable[OwnerGroup],
        routes: Iterable[Route] = (),
        *,
        default: str | None = None,
        unavailable: Iterable[str] = (),
        clock: Clock | None = None,
    ) -> None:
        if isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable):
            raise ConfigError(f"routing: groups is a list of OwnerGroup objects, not {groups!r}")
        if isinstance(routes, (str, bytes)) or not isinstance(routes, Iterable):
            raise ConfigError(f"routing: routes is a list of Route objects, not {routes!r}")
        self.groups: dict[str, OwnerGroup] = {}
        for group in groups:
            if not isinstance(group, OwnerGroup):
                raise ConfigError(f"routing: groups must be OwnerGroup objects, not {group!r}")
            if group.name in self.groups:
                raise ConfigError(f"routing: two owner groups are named {group.name!r}")
            self.groups[group.name] = group
        self.routes: tuple[Route, ...] = tuple(routes)
        for i, route in enumerate(self.routes):
            if not isinstance(route, Route):
                raise ConfigError(f"routing: routes[{i}] must be a Route, not {route!r}")
            if route.group not in self.groups:
                raise ConfigError(
                    f"routing: route {route.name or i!r} sends leads to unknown group "
                    f"{route.group!r}; groups: {', '.join(self.groups) or 'none'}"
                )
        if default is not None and not isinstance(default, str):
            raise ConfigError(
                f"routing: default is the name of one group, not {default!r}; "
                f"groups: {', '.join(self.groups) or 'none'}"
            )
        if default is not None and default not in self.groups:
            raise ConfigError(
                f"routing: default group {default!r} is not defined; "
                f"groups: {', '.join(self.groups) or 'none'}"
            )
        self.default = default
        # A name no group has (a typo) would mark nobody: refused, as set_unavailable does.
        names = _names("routing", "unavailable", unavailable)
        self._unavailable: set[str] = set(self._known("routing: unavailable", "owners", names))
        # Smooth weighted round-robin: each owner's running credit, per group.
        self._credit: dict[str, dict[str, float]] = {
            name: dict.fromkeys(group.owners, 0.0) for name, group in self.groups.items()
        }
        self._own_clock = clock is not None
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._day: date | None = None
        self._given: Counter[str] = Counter()  # leads given today, per owner
        # Leads reserved today (see reserve) whose commit is not known yet, per owner:
        # they take capacity, so that two threads' captures cannot overfill an owner.
        self._held: Counter[str] = Counter()
        # The same reservations by lead id, until settled: what arrival_data records.
        self._pending: dict[UUID, _Taken] = {}
        #: What :meth:`attach` last read: the funnel, the day, the position it read to,
        #: the leads routed that day per owner, and the owners of those of them that
        #: were still held here, unsettled, when read (by id).
        self._read: tuple[_FunnelLike, date, int, Counter[str], dict[UUID, str]] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RoutingRules(groups={list(self.groups)}, routes={len(self.routes)}, "
            f"default={self.default!r})"
        )

    # --- configuration ----------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutingRules:
        """Rules from data shaped like the TOML file (see :meth:`from_toml`)."""
        if not isinstance(data, Mapping):
            raise ConfigError("routing: the config must be a table (groups, routes, ...)")
        known = ("groups", "routes", "default", "unavailable")
        for key in data:
            if key not in known:
                raise ConfigError(f"routing: unknown key {key!r}; known keys: {', '.join(known)}")
        groups = []
        for i, entry in enumerate(_entries("groups", data.get("groups", []))):
            where = f"routing: groups[{i}]" + (
                f" ({entry['name']!r})" if isinstance(entry.get("name"), str) else ""
            )
            for key in entry:
                if key not in _GROUP_KEYS:
                    raise ConfigError(
                        f"{where}: unknown key {key!r}; known keys: {', '.join(_GROUP_KEYS)}"
                    )
            for key in ("name", "owners"):
                if key not in entry:
                    raise ConfigError(f"{where}: {key} is missing")
            try:
                groups.append(
                    OwnerGroup(
                        entry["name"],
                        entry["owners"],
                        entry.get("backup"),
                        capacity=entry.get("capacity"),
                        weights=entry.get("weights"),
                    )
                )
            except ConfigError as exc:
                raise ConfigError(f"{where}: {str(exc).partition(': ')[2]}") from None
        routes = []
        for i, entry in enumerate(_entries("routes", data.get("routes", []))):
            label = entry.get("name") or entry.get("group")
            where = f"routing: routes[{i}]" + (f" ({label!r})" if isinstance(label, str) else "")
            for key in entry:
                if key not in _ROUTE_KEYS:
                    raise ConfigError(
                        f"{where}: unknown condition {key!r}; known: {', '.join(_ROUTE_KEYS)}"
                    )
            if "group" not in entry:
                raise ConfigError(f"{where}: group is missing (the group to send leads to)")
            try:
                routes.append(Route(**entry))
            except ConfigError as exc:
                raise ConfigError(f"{where}: {str(exc).partition(': ')[2]}") from None
        return cls(
            groups,
            routes,
            default=data.get("default"),
            unavailable=data.get("unavailable", ()),
        )

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> RoutingRules:
        """Rules from a TOML file: top-level ``default`` and ``unavailable``, then
        ``[[groups]]`` tables (``name``, ``owners``, ``backup``, and the inline tables
        ``capacity = { ana = 20 }`` and ``weights = { ana = 2 }``) and ``[[routes]]``
        tables (``group`` and the conditions of :class:`Route`), in order."""
        return cls.from_dict(read_toml(path, "routing file"))

    # --- availability -----------------------------------------------------------------

    @property
    def unavailable(self) -> frozenset[str]:
        """The owners marked unavailable (out of office)."""
        with self._lock:
            return frozenset(self._unavailable)

    def set_unavailable(self, *owners: str) -> None:
        """Mark ``owners`` out of office: they get no new leads and no escalations.
        Names are trimmed as the groups' are; one that no group has (a typo) is a
        :class:`~leadfunnel.ConfigError`, rather than a mark that changes nothing."""
        names = self._known("set_unavailable", "owners", owners)
        with self._lock:
            self._unavailable.update(names)

    def set_available(self, *owners: str) -> None:
        """Mark ``owners`` back in the office (names checked as :meth:`set_unavailable`)."""
        names = self._known("set_available", "owners", owners)
        with self._lock:
            self._unavailable.difference_update(names)

    def _known(self, where: str, key: str, owners: Iterable[str]) -> tuple[str, ...]:
        """``owners`` (``key``'s names), trimmed, or a :class:`ConfigError` naming those
        no group has and the names the groups have."""
        names = _names(where, key, owners)
        members = {
            name
            for group in self.groups.values()
            for name in (*group.owners, *((group.backup,) if group.backup else ()))
        }
        unknown = [name for name in names if name not in members]
        if unknown:
            raise ConfigError(
                f"{where}: no group has {', '.join(map(repr, unknown))}; the groups' "
                f"owners and backups: {', '.join(sorted(members)) or 'none'}"
            )
        return names

    def is_available(self, owner: str) -> bool:
        """Whether ``owner`` is not marked unavailable."""
        with self._lock:
            return owner not in self._unavailable

    # --- routing ----------------------------------------------------------------------

    def group_for(self, person: Lead | Contact) -> OwnerGroup | None:
        """The group of the first route ``person`` matches, else the default group."""
        for route in self.routes:
            if route.matches(person):
                return self.groups[route.group]
        return self.groups[self.default] if self.default is not None else None

    def assign(self, lead: Lead) -> str | None:
        """The owner whose turn it is in the lead's group (``None``: nobody).

        Owners who are unavailable or at capacity today are passed over; if that is
        every owner, the backup (when available and under capacity) takes the lead.
        """
        taken = self._take(lead, held=False)
        return None if taken is None else taken.owner

    def reserve(self, lead: Lead) -> tuple[str | None, Callable[[bool], None] | None]:
        """The owner for ``lead``, about to be stored, and ``settle(stored)`` to call once
        it is known whether it was (``None``: nothing to settle). What the funnel calls
        for each new lead to be called (raw or qualified), and for a suspect or
        farm-list lead without an owner that responds.

        A lead without an owner is assigned as :meth:`assign` does, and a lead with one
        counted as :meth:`count_given` counts it; either way the lead only holds its
        place in the owner's day (the next lead sees the owner that much fuller) until
        ``settle(True)`` counts it as given. ``settle(False)`` (the change rolled back,
        or the store refused it) gives the place back, and the turn: the owner is first
        in line again, as if the lead had never come. ``settle`` acts once; one
        called after the day changed leaves today's counts alone. Until it is called,
        :meth:`arrival_data` says what the lead's event records of it."""
        if lead.owner is None:
            taken = self._take(lead, held=True)
            if taken is None:
                return None, None
            return taken.owner, functools.partial(self._settle, taken)
        if lead.owner not in self._capped():
            return lead.owner, None  # only owners with a capacity are counted
        with self._lock:
            self._roll_day()
            if lead.created_at.astimezone(UTC).date() != self._day:
                return lead.owner, None
            self._held[lead.owner] += 1
            taken = self._pending[lead.id] = _Taken(lead.owner, self._day, lead_id=lead.id)
        return lead.owner, functools.partial(self._settle, taken)

    def arrival_data(self, lead: Lead | Contact) -> dict[str, Any]:
        """What the event recording the arrival of ``lead`` (a lead :meth:`reserve` has
        counted, not yet settled) records of it, for :meth:`attach` to count it again:
        ``{"routed": {"owner": "ana", "day": "2026-03-02"}}``, the owner and the UTC day
        (ISO) it counts against. Empty for a lead that counts against no one's day.
        The funnel puts it in the ``data`` of the lead's ``add``, ``capture``,
        ``import`` or ``respond`` event."""
        with self._lock:
            taken = self._pending.get(lead.id)
        if taken is None or taken.day is None:
            return {}
        return {"routed": {"owner": taken.owner, "day": taken.day.isoformat()}}

    def _take(self, lead: Lead, *, held: bool) -> _Taken | None:
        """Choose the owner of ``lead``, count the lead as given (or ``held``)."""
        group = self.group_for(lead)
        if group is None:
            return None
        with self._lock:
            self._roll_day()
            credit = self._credit[group.name]
            ready = [owner for owner in group.owners if self._can_take(group, owner)]
            if ready:
                # Smooth weighted round-robin (as nginx balances upstreams): every ready
                # owner earns their weight, the richest takes the lead and pays the
                # round's total; ties go to the owner listed first.
                for owner in ready:
                    credit[owner] += group.weight(owner)
                chosen = max(ready, key=lambda owner: credit[owner])
                credit[chosen] -= sum(group.weight(owner) for owner in ready)
                turn = (group, tuple(ready))
            elif group.backup is not None and self._can_take(group, group.backup):
                chosen, turn = group.backup, None
            else:
                return None
            (self._held if held else self._given)[chosen] += 1
            taken = _Taken(chosen, self._day, turn, lead_id=lead.id)
            if held:
                self._pending[lead.id] = taken
            return taken

    def _settle(self, taken: _Taken, stored: bool) -> None:
        """Count a reserved lead as given (``stored``), or give its place and turn back."""
        with self._lock:
            if taken.settled:
                return
            taken.settled = True
            if taken.lead_id is not None and self._pending.get(taken.lead_id) is taken:
                del self._pending[taken.lead_id]
            self._roll_day()
            if taken.day == self._day:  # a day's counts start afresh: nothing held then
                self._held[taken.owner] -= 1
                if stored:
                    self._given[taken.owner] += 1
            if not stored and taken.turn is not None:
                # Undo the round: each of its owners gives back what they earned, the
                # chosen one gets back what they paid. Credit only ever adds up, so
                # this leaves the turns as if the lead had never been routed, whatever
                # was routed since.
                group, ready = taken.turn
                credit = self._credit[group.name]
                for owner in ready:
                    credit[owner] -= group.weight(owner)
                credit[taken.owner] += sum(group.weight(owner) for owner in ready)

    def _can_take(self, group: OwnerGroup, owner: str) -> bool:
        if owner in self._unavailable:
            return False
        limit = group.capacity_of(owner)
        return limit is None or self._given[owner] + self._held[owner] < limit

    def _roll_day(self) -> None:
        today = self._clock.now().astimezone(UTC).date()
        if today != self._day:
            self._day = today
            self._given.clear()
            self._held.clear()

    # --- capacity ---------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The clock whose UTC day capacities count in."""
        return self._clock

    def use_clock(self, clock: Clock) -> None:
        """Count days on ``clock`` (the funnel's), unless the router was made with a
        ``clock`` of its own."""
        if not self._own_clock:
            with self._lock:
                self._clock = clock

    def count_given(self, lead: Lead) -> None:
        """Count ``lead``, stored with its owner already (set by hand, or an import's
        owner column), against that owner's day if it was created today and the owner
        has a capacity. The funnel counts such a lead itself, through :meth:`reserve`
        (once it is stored, and recorded for :meth:`attach`); this is for a lead
        stored some other way, which a restarted process does not count."""
        if lead.owner is None or lead.owner not in self._capped():
            return  # only owners with a capacity are counted, as attach() counts them
        with self._lock:
            self._roll_day()
            if lead.created_at.astimezone(UTC).date() == self._day:
                self._given[lead.owner] += 1

    def _capped(self) -> set[str]:
        """The owners with a capacity in some group: those whose days are counted."""
        return {owner for group in self.groups.values() for owner in (group.capacity or {})}

    def assigned_today(self) -> dict[str, int]:
        """How many leads each owner was given today (only owners given any): routed,
        or stored with that owner already (see :meth:`count_given`); through a funnel,
        once stored (a lead of an open transaction counts when it commits)."""
        with self._lock:
            self._roll_day()
            return {owner: n for owner, n in self._given.items() if n}

    def attach(self, funnel: _FunnelLike) -> None:
        """Route for ``funnel``: count days on its clock, and count today's leads from its
        store, so that a process that restarts at noon keeps the morning's counts.

        Each lead the funnel routed (or counted against an owner's day: see
        :meth:`reserve`) is recorded in the event of its arrival (``data["routed"]``,
        see :meth:`arrival_data`), with the day it was given on, whatever its
        ``created_at``: an import of last year's CRM rows counts today. They are read
        from the end of the event feed back to the first lead routed before today: one
        day of the feed (all of it, on the first day a router records there). Called
        again, it reads only the events committed since: this takes in the leads other
        processes gave meanwhile (each process counts only its own between calls). For
        each owner with a capacity the count is the larger of the store's and the
        router's own. Call it once after ``Funnel(router=...)``, and again when other
        processes route on the same store. Without a capacity in any group there is
        nothing to count, and the feed is not read."""
        self.use_clock(funnel.clock)
        if not self._capped():
            return
        with self._lock:
            self._roll_day()
            assert self._day is not None
            today, read = self._day, self._read
        # A lead of this router's that is stored but not settled yet (its commit done,
        # the funnel about to settle it) is in the feed and still held here: counted
        # from the feed, it would be counted again once settled. Such leads are noted as
        # they are read (a lead is reserved before its event can be read).
        held = self._pending.__contains__
        if read is not None and read[0] is funnel and read[1] == today:
            counts, position, leads = _routed_since(funnel, today, read[2], read[3], read[4], held)
        else:
            counts, position, leads = _routed_back(funnel, today, held)
        with self._lock:
            self._roll_day()
            if self._day != today:
                return  # the day ended while the feed was read: the new one starts at 0
            leads = {id: owner for id, owner in leads.items() if id in self._pending}
            self._read = (funnel, today, position, counts, leads)
            unsettled = Counter(leads.values())
            for owner in self._capped():
                self._given[owner] = max(self._given[owner], counts[owner] - unsettled[owner])

    def needs_record(self, owner: str | None) -> bool:
        """Whether :meth:`backup_for` needs the record to answer for ``owner``: only
        when ``owner`` is in no group or in several (``due()`` then reads it)."""
        if owner is None:
            return True
        return sum(1 for g in self.groups.values() if _member(g, owner)) != 1

    def backup_for(self, owner: str | None, lead: Lead | Contact | None = None) -> str | None:
        """Who takes over an overdue follow-up of ``owner``'s (``None``: nobody).

        The group is the one ``lead`` routes to if ``owner`` belongs to it, else the
        first group listing ``owner`` (as owner or backup), else the one ``lead``
        routes to (or the default group). Its backup is chosen when available and not
        ``owner``; otherwise the first other available owner of the group.
        """
        routed = self.group_for(lead) if lead is not None else None
        group: OwnerGroup | None = None
        if routed is not None and owner is not None and _member(routed, owner):
            group = routed
        if group is None and owner is not None:
            group = next((g for g in self.groups.values() if _member(g, owner)), None)
        if group is None:
            group = routed if lead is not None else None
            if group is None and self.default is not None:
                group = self.groups[self.default]
        if group is None:
            return None
        with self._lock:
            away = set(self._unavailable)
        if group.backup is not None and group.backup != owner and group.backup not in away:
            return group.backup
        return next((o for o in group.owners if o != owner and o not in away), None)


@dataclass(slots=True)
class _Taken:
    """A lead counted against ``owner``'s ``day``, and the round-robin ``turn`` it took
    (its group and the owners ready then; ``None`` for the backup or an owner given)."""

    owner: str
    day: date | None
    turn: tuple[OwnerGroup, tuple[str, ...]] | None = None
    settled: bool = False
    lead_id: UUID | None = None  # the lead reserved (see RoutingRules.arrival_data)


#: How many events :meth:`RoutingRules.attach` reads at a time.
_PAGE = 1000


def _routed(event: Event) -> tuple[str, date] | None:
    """The owner and day ``event`` records a lead was given on (``data["routed"]``, see
    :meth:`RoutingRules.arrival_data`), if it records one."""
    routed = event.data.get("routed")
    if not isinstance(routed, Mapping):
        return None
    owner, day = routed.get("owner"), routed.get("day")
    if not isinstance(owner, str) or not isinstance(day, str):
        return None
    try:
        return owner, date.fromisoformat(day)
    except ValueError:
        return None


def _routed_back(
    funnel: _FunnelLike, today: date, held: Callable[[UUID], bool]
) -> tuple[Counter[str], int, dict[UUID, str]]:
    """The leads routed on ``today`` per owner, read from the end of ``funnel``'s event
    feed back to the first one routed on an earlier day (and a page more: two leads
    routed either side of midnight may commit in either order), the position of the
    last event read, and the owners of those leads ``held`` says are held, by id."""
    last = funnel.last_position()
    counts: Counter[str] = Counter()
    leads: dict[UUID, str] = {}
    end, pages_left = last, -1  # -1: until a lead routed before today shows
    while end > 0 and pages_left != 0:
        start = max(end - _PAGE, 0)
        earlier = False
        # Positions grow in commit order, with gaps where a store leaves some: the page
        # after ``start`` holds every event up to ``end`` (and maybe some after it).
        for event in funnel.events(after=start, limit=_PAGE):
            if event.position > end:
                break
            routed = _routed(event)
            if routed is None:
                continue
            owner, day = routed
            if day == today:
                counts[owner] += 1
                if held(event.subject_id):
                    leads[event.subject_id] = owner
            elif day < today:
                earlier = True
        if pages_left > 0:
            pages_left -= 1
        elif earlier:
            pages_left = 1
        end = start
    return counts, last, leads


def _routed_since(
    funnel: _FunnelLike,
    today: date,
    after: int,
    counts: Counter[str],
    leads: dict[UUID, str],
    held: Callable[[UUID], bool],
) -> tuple[Counter[str], int, dict[UUID, str]]:
    """``counts`` and ``leads`` (the leads routed on ``today`` per owner up to position
    ``after``, and the owners of those that were held, by id) with those of the events
    committed since (of those ``held`` says are held), and the position of the last
    one."""
    counts, leads = Counter(counts), dict(leads)
    while page := funnel.events(after=after, limit=_PAGE):
        for event in page:
            routed = _routed(event)
            if routed is not None and routed[1] == today:
                counts[routed[0]] += 1
                if held(event.subject_id):
                    leads[event.subject_id] = routed[0]
        after = page[-1].position
    return counts, after, leads


def _member(group: OwnerGroup, owner: str) -> bool:
    return owner in group.owners or owner == group.backup


def _entries(key: str, value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"routing: {key} must be a list of tables, not {value!r}")
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"routing: {key}[{i}] must be a table, not {entry!r}")
    return list(value)
