"""The SQL of the adapter's reads: step counts, follow-up figures, time in stage, rep
lists, and filters on the records' JSON documents, built with SQLAlchemy Core for each
dialect (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import functools
import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .._clock import require_aware
from .._enums import ContactType, LeadStatus, Outcome, Stage
from .._lifecycle import TIMED_STEPS
from .._repository import GroupBy, kept_everywhere
from . import _schema as s
from ._rows import dump_json

_RESETS = (Outcome.REPLIED.value, Outcome.INTERESTED.value)
_OPEN_STAGES = tuple(st.value for st in Stage if st not in (Stage.WON, Stage.LOST))


_STEP_TYPE = s.steps.c.step.type
_GROUP_TYPE = s.leads.c.source.type


def _stretch_group(by: GroupBy | None, end: Any, following: str) -> tuple[Any, Any]:
    """The group of a time-in-stage stretch ending at ``following``, and the FROM clause
    that computes it: the group :meth:`SqlRepository.step_counts` gives that arrival."""
    if by is None:
        return sa.cast(sa.null(), _GROUP_TYPE), end
    if by == "month":
        return end.c.month, end
    lead = s.leads.alias(f"lead_{following}")
    if following in ("qualified", "appointment_set") and by in ("source", "profile"):
        return lead.c[by], end.outerjoin(lead, lead.c.id == end.c.subject_id)
    if following == "qualified":  # a lead's arrival: its owner; no setter yet
        if by == "setter":
            return sa.cast(sa.null(), _GROUP_TYPE), end
        return lead.c.owner, end.outerjoin(lead, lead.c.id == end.c.subject_id)
    deal = s.opportunities.alias(f"deal_{following}")
    deal_id = end.c.deal_id if following == "appointment_set" else end.c.subject_id
    joined = end.outerjoin(deal, deal.c.id == deal_id)
    if by in ("owner", "setter"):
        return deal.c[by], joined
    contact = s.contacts.alias(f"contact_{following}")
    joined = joined.outerjoin(contact, contact.c.id == deal.c.contact_id).outerjoin(
        lead, lead.c.id == sa.func.coalesce(deal.c.lead_id, contact.c.lead_id)
    )
    if by == "source":  # a contact with no lead counts under its own source, as there
        return sa.case((lead.c.id.is_not(None), lead.c.source), else_=contact.c.source), joined
    return lead.c[by], joined


def filter_value(name: str, value: Any) -> Any:
    """A list filter's value (not ``where``'s) as its column holds it."""
    if name in ("created_since", "created_until"):
        return require_aware(value, name)
    if name in ("status", "type", "stage"):
        return str(getattr(value, "value", value))
    return value


# The statements of the follow-up candidates and of the report, built once per shape
# (building one costs more than running it on a small database): limits, owner and the
# period's bounds are parameters, the bounds bound by ``period_params``.
_SINCE = sa.bindparam("since", type_=s.steps.c.at.type)
_UNTIL = sa.bindparam("until", type_=s.steps.c.at.type)


def _in_period(at: Any, since: bool, until: bool) -> list[Any]:
    """``at`` within the period of the parameters ``since`` (included) and ``until``
    (excluded), where the period has those bounds."""
    return [*([at >= _SINCE] if since else []), *([at < _UNTIL] if until else [])]


def period_params(since: datetime | None, until: datetime | None) -> dict[str, datetime]:
    """The parameters of a report statement for the period ``[since, until)``."""
    bounds = {}
    if since is not None:
        bounds["since"] = require_aware(since, "since")
    if until is not None:
        bounds["until"] = require_aware(until, "until")
    return bounds


def won_conditions(since: bool, until: bool) -> list[Any]:
    """The won deals closed in the period of the parameters ``since`` and ``until``
    (where the period has those bounds): ``Repository.won_batches``."""
    closed = s.opportunities.c.closed_at
    return [
        s.opportunities.c.stage == Stage.WON.value,
        closed.is_not(None),
        *_in_period(closed, since, until),
    ]


@functools.cache
def follow_up_candidate_queries(by_owner: bool) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The leads and the contacts that may be due a follow-up, with their touches since
    the last reset (see ``SqlRepository.follow_up_candidates``); the limits and the
    owner are parameters."""
    t = s.touches
    # Each subject's last resetting touch, by (at, seq), as two GROUP BYs: databases
    # index those on the fly, where a window function left SQLite rescanning it for
    # every touch and every lead (quadratic: 6 s for 5k leads).
    reset_at = (
        sa.select(t.c.subject_id, sa.func.max(t.c.at).label("at"))
        .where(t.c.outcome.in_(_RESETS))
        .group_by(t.c.subject_id)
        .subquery("reset_at")
    )
    r = t.alias("r")
    reset = (
        sa.select(r.c.subject_id, r.c.at, sa.func.max(r.c.seq).label("seq"))
        .select_from(
            r.join(
                reset_at,
                sa.and_(reset_at.c.subject_id == r.c.subject_id, reset_at.c.at == r.c.at),
            )
        )
        .where(r.c.outcome.in_(_RESETS))
        .group_by(r.c.subject_id, r.c.at)
        .subquery("reset")
    )
    ld, ct, op = s.leads, s.contacts, s.opportunities

    def counted_in(people: sa.Table, entered: Any) -> Any:
        """Each of ``people``'s touches since the last reset, logged since it entered
        its cadence (``entered``): how many, and the last one's ``at``."""
        return (
            sa.select(
                t.c.subject_id,
                sa.func.count().label("n"),
                sa.func.max(t.c.at).label("last_at"),
            )
            .select_from(
                t.join(people, people.c.id == t.c.subject_id).outerjoin(
                    reset, reset.c.subject_id == t.c.subject_id
                )
            )
            .where(
                t.c.at >= entered,
                sa.or_(
                    reset.c.subject_id.is_(None),
                    t.c.at > reset.c.at,
                    sa.and_(t.c.at == reset.c.at, t.c.seq > reset.c.seq),
                ),
            )
            .group_by(t.c.subject_id)
            .subquery(f"counted_{people.name}")
        )

    def candidates(
        t: sa.Table, state: Any, anchor: Any, limit: str, *where: Any, entered: Any = None
    ) -> Any:
        """``t``'s people in a cadence: id, state, owner, anchor, last reset, touches
        since it (and since they ``entered`` the cadence: the anchor unless given),
        last touch and opt-outs."""
        counted = counted_in(t, anchor if entered is None else entered)
        n = sa.func.coalesce(counted.c.n, 0)
        return (
            sa.select(
                t.c.id, state, t.c.owner, anchor, reset.c.at, n, counted.c.last_at, t.c.opt_outs
            )
            .select_from(
                t.outerjoin(counted, counted.c.subject_id == t.c.id).outerjoin(
                    reset, reset.c.subject_id == t.c.id
                )
            )
            .where(
                *where,
                t.c.erased_at.is_(None),
                n < sa.bindparam(limit, type_=sa.Integer),
                *([t.c.owner == sa.bindparam("owner")] if by_owner else []),
            )
        )

    status_at = sa.func.coalesce(ld.c.status_at, ld.c.created_at)
    # When a raw or qualified lead entered its cadence (see _channels.lead_entered):
    # when it first became raw (a lead that merges took in has an arrival of each
    # record's), unless a qualified one was disqualified since (then when it was
    # qualified); the (step, subject_id, at) index of the steps answers both.
    raw, out = s.steps.alias("raw_step"), s.steps.alias("out_step")
    became_raw = (
        sa.select(sa.func.min(raw.c.at))
        .where(raw.c.step == "raw", raw.c.subject_id == ld.c.id, raw.c.at <= status_at)
        .correlate_except(raw)
        .scalar_subquery()
    )
    disqualified_since = (
        sa.exists()
        .where(
            out.c.step == "unqualified",
            out.c.subject_id == ld.c.id,
            out.c.at >= became_raw,
            out.c.at <= status_at,
        )
        .correlate_except(out)
    )
    # (No arrival at raw: status_at, from outside the cadence. With none, the
    # disqualified_since comparison is NULL, so its EXISTS is false.)
    entered = sa.case(
        (
            sa.and_(ld.c.status == LeadStatus.QUALIFIED.value, disqualified_since),
            status_at,
        ),
        else_=sa.func.coalesce(became_raw, status_at),
    )
    # Anchored where the lead entered its cadence: qualifying a raw lead keeps its
    # schedule (an overdue first response stays overdue), as it keeps its count.
    lead_query = candidates(
        ld,
        ld.c.status,
        entered,
        "lead_limit",
        ld.c.status.in_((LeadStatus.RAW.value, LeadStatus.QUALIFIED.value)),
        entered=entered,
    )
    busy = sa.exists().where(op.c.contact_id == ct.c.id, op.c.stage.in_(_OPEN_STAGES))
    # A contact re-enters the cadence when its last deal closes (all are closed here):
    # its closed_at, which an edit of the closed deal since (its owner changed, a merge
    # moving it to this contact) does not move, as its updated_at would.
    last_deal = (
        sa.select(sa.func.max(sa.func.coalesce(op.c.closed_at, op.c.updated_at)))
        .where(op.c.contact_id == ct.c.id)
        .scalar_subquery()
    )
    contact_query = candidates(
        ct,
        ct.c.type,
        sa.case((last_deal > ct.c.created_at, last_deal), else_=ct.c.created_at),
        "contact_limit",
        ct.c.type == ContactType.PROSPECT.value,
        ~busy,
    )
    return lead_query, contact_query


@functools.cache
def follow_up_query(since: bool, until: bool) -> sa.Select[Any]:
    """How many leads became qualified in the period, how many of them were never
    followed up, and how many touches they had. A converted lead is followed up on the
    contact it became: its touches count too, and the booking itself is a follow-up.
    Each part is a range of the touches' ``(subject_id, ...)`` index per lead or
    contact, never a join of every lead with every touch: a lead's and a contact's ids
    never meet, and each contact is counted once however many leads lead to it (two
    leads of one person share the contact their merged contacts became)."""
    st, t, lead = s.steps, s.touches, s.leads
    where = [st.c.step == "qualified", *_in_period(st.c.at, since, until)]

    def qualified_ids() -> sa.Select[Any]:
        return sa.select(st.c.subject_id).where(*where)

    qualified = qualified_ids().distinct().subquery()
    untouched = ~sa.exists().where(t.c.subject_id == qualified.c.subject_id)
    never = sa.and_(lead.c.contact_id.is_(None), untouched)
    on_leads = sa.select(sa.func.count()).where(t.c.subject_id.in_(qualified_ids()))
    contacts = sa.select(lead.c.contact_id).where(
        lead.c.id.in_(qualified_ids()), lead.c.contact_id.is_not(None)
    )
    on_contacts = sa.select(sa.func.count()).where(t.c.subject_id.in_(contacts))
    return sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((never, 1), else_=0)), 0),
        on_leads.scalar_subquery() + on_contacts.scalar_subquery(),
    ).select_from(qualified.outerjoin(lead, lead.c.id == qualified.c.subject_id))


@functools.cache
def step_counts_query(
    by: GroupBy | None, since: bool, until: bool, steps: frozenset[str] | None
) -> sa.Select[Any]:
    st = s.steps
    where = _in_period(st.c.at, since, until)
    if steps is not None:
        where.append(st.c.step.in_(sorted(steps)))
    count = sa.func.count(sa.distinct(st.c.subject_id))
    if by is None:
        return sa.select(st.c.step, sa.null(), count).where(*where).group_by(st.c.step)
    if by == "month":
        return sa.select(st.c.step, st.c.month, count).where(*where).group_by(st.c.step, st.c.month)
    # source, owner, setter or profile
    lead = s.leads.alias("lead")
    deal = s.opportunities.alias("deal")
    contact = s.contacts.alias("contact")
    deal_lead = s.leads.alias("deal_lead")
    # Join only what the grouping reads: the deal for a setter, lead and deal for an
    # owner, and the deal's lead (through its contact) for source and profile.
    joined: Any = st.outerjoin(deal, deal.c.id == st.c.subject_id)
    group: Any
    if by == "setter":
        group = deal.c.setter
    else:
        joined = joined.outerjoin(lead, lead.c.id == st.c.subject_id)
        if by == "owner":
            group = sa.func.coalesce(lead.c.owner, deal.c.owner)
        else:
            joined = joined.outerjoin(contact, contact.c.id == deal.c.contact_id).outerjoin(
                deal_lead,
                deal_lead.c.id == sa.func.coalesce(deal.c.lead_id, contact.c.lead_id),
            )
            # A contact with no lead (a customer imported as one) has a source of its
            # own: its deals count there rather than under none.
            group = sa.case(
                (lead.c.id.is_not(None), lead.c[by]),
                (deal_lead.c.id.is_not(None), deal_lead.c[by]),
                else_=contact.c.source if by == "source" else sa.null(),
            )
    group = group.label("grp")
    return (
        sa.select(st.c.step, group, count)
        .select_from(joined)
        .where(*where)
        .group_by(st.c.step, group)
    )


@functools.cache
def stage_times_query(by: GroupBy | None, since: bool, until: bool) -> sa.Select[Any]:
    st, deals = s.steps, s.opportunities
    month = [sa.func.min(st.c.month).label("month")] if by == "month" else []
    # Per stretch, each subject's first arrival at the later step (few rows: an index
    # range of that step), then its first arrival at the earlier one by an index seek
    # on (step, subject_id, at). Raw leads that went no further are never read.
    pairs = []
    for step, following in itertools.pairwise(TIMED_STEPS):
        ends: Any
        if following == "appointment_set" and by in ("owner", "setter"):
            # Two subjects: a lead, and the earliest booked of its opportunities,
            # whose owner or setter the stretch is grouped by.
            booked = (
                sa.select(st.c.subject_id, sa.func.min(st.c.at).label("at"))
                .where(st.c.step == following)
                .group_by(st.c.subject_id)
                .subquery("booked")
            )
            first = (
                sa.func.row_number()
                .over(partition_by=deals.c.lead_id, order_by=(booked.c.at, deals.c.seq))
                .label("rn")
            )
            ranked_deals = (
                sa.select(
                    deals.c.lead_id.label("subject_id"),
                    deals.c.id.label("deal_id"),
                    booked.c.at,
                    first,
                )
                .select_from(booked.join(deals, deals.c.id == booked.c.subject_id))
                .where(deals.c.lead_id.is_not(None))
                .subquery("ranked_deals")
            )
            ends = sa.select(
                ranked_deals.c.subject_id, ranked_deals.c.deal_id, ranked_deals.c.at
            ).where(ranked_deals.c.rn == 1)
        elif following == "appointment_set":
            # Two subjects: a lead, and the earliest booked of its opportunities.
            ends = (
                sa.select(
                    deals.c.lead_id.label("subject_id"),
                    sa.func.min(st.c.at).label("at"),
                    *month,
                )
                .select_from(st.join(deals, deals.c.id == st.c.subject_id))
                .where(st.c.step == following, deals.c.lead_id.is_not(None))
                .group_by(deals.c.lead_id)
            )
        else:
            ends = (
                sa.select(st.c.subject_id, sa.func.min(st.c.at).label("at"), *month)
                .where(st.c.step == following)
                .group_by(st.c.subject_id)
            )
        end = ends.subquery(f"end_{following}")
        earlier = st.alias(f"start_{step}")
        start = (
            sa.select(sa.func.min(earlier.c.at))
            .where(earlier.c.step == step, earlier.c.subject_id == end.c.subject_id)
            .scalar_subquery()
        )
        group, joined = _stretch_group(by, end, following)
        pairs.append(
            sa.select(
                sa.cast(sa.literal(step), _STEP_TYPE).label("stage"),
                group.label("grp"),
                _SecondsBetween(start, end.c.at).label("seconds"),
            )
            .select_from(joined)
            .where(*_in_period(end.c.at, since, until))
        )
    found = sa.union_all(*pairs).subquery("found")
    durations = (
        sa.select(found.c.stage, found.c.grp, found.c.seconds)
        .where(found.c.seconds.is_not(None))  # no arrival at the earlier step
        .subquery("durations")
    )
    part = (durations.c.stage, durations.c.grp)
    ranked = sa.select(
        durations.c.stage,
        durations.c.grp,
        durations.c.seconds,
        sa.func.row_number().over(partition_by=part, order_by=durations.c.seconds).label("rn"),
        sa.func.count().over(partition_by=part).label("n"),
    ).subquery("ranked")
    # The middle row, or the middle two: 2 * rn in [n, n + 2].
    return (
        sa.select(
            ranked.c.stage,
            ranked.c.grp,
            sa.func.avg(ranked.c.seconds),
            sa.func.max(ranked.c.n),
        )
        .where(ranked.c.rn * 2 >= ranked.c.n, ranked.c.rn * 2 <= ranked.c.n + 2)
        .group_by(ranked.c.stage, ranked.c.grp)
    )


class _SecondsBetween(FunctionElement[float]):
    """Seconds from the first instant to the second, computed by the database."""

    type = sa.Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(_SecondsBetween)
def _seconds_sqlite(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    # SQLite keeps instants as integer microseconds since 1970 (schema.UtcDateTime).
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(({end}) - ({start})) / 1000000.0"


@compiles(_SecondsBetween, "postgresql")
def _seconds_postgresql(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    # A double, as the other stores compute it (EXTRACT gives an exact numeric, whose
    # average of two middle values could round otherwise than Python's median does).
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end}) - ({start})) AS DOUBLE PRECISION)"


@compiles(_SecondsBetween, "mysql")
@compiles(_SecondsBetween, "mariadb")
def _seconds_mysql(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    # Divided by a double (1E6): by the exact 1000000.0, MariaDB divides DECIMALs and
    # keeps 4 decimals (div_precision_increment), not the microseconds.
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"TIMESTAMPDIFF(MICROSECOND, {start}, {end}) / 1E6"


# A number's text, as a Decimal's JSON or a JSON number spells it ("10.50", "-1E+2"),
# written in the query as a constant (an index's expression matches no parameter).
_NUMBER_TEXT: Any = sa.literal_column(r"'^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$'")


def equal_values(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # values that cannot be compared (an application's type) differ
        return False


class DocField:
    """One field of the records' JSON documents, in the dialect's SQL: ``json_extract``
    on SQLite, ``->>`` on PostgreSQL, ``JSON_EXTRACT`` on MariaDB.

    :meth:`equals` compares by value, as Python compares the validated value with a
    record's (``Repository.leads``), from what the document holds (the field's JSON:
    a ``Decimal`` as its text, a datetime as ISO 8601 text with its offset, a set as
    an array in no particular order, a dict's keys in any order). Numbers, booleans
    and texts compare as before, so the expression indexes the docs show still serve
    them. A value no store holds (``kept_everywhere``, the check every commit makes) is
    a constant false, never bound: the database would refuse it, or compare it as
    something else.
    """

    def __init__(self, dialect: str, doc: sa.Column[Any], name: str) -> None:
        self.dialect = dialect
        self.doc = doc
        self.key: Any = sa.literal_column("'" + name.replace("'", "''") + "'")
        self.path: Any = sa.literal_column("'$." + name + "'")

    def _node(self) -> Any:
        """PostgreSQL: the field as JSONB; elsewhere, as the dialect extracts it."""
        if self.dialect == "postgresql":
            return self.doc.op("->")(self.key)
        return sa.func.json_extract(self.doc, self.path)

    def text(self) -> Any:
        """The field as SQL text (a JSON string unquoted); NULL when absent or null."""
        if self.dialect == "postgresql":
            return self.doc.op("->>", return_type=sa.Text())(self.key)
        if self.dialect == "sqlite":
            return sa.func.json_extract(self.doc, self.path)
        return sa.func.json_unquote(self._node())

    def absent(self) -> Any:
        """The document lacks the field (a field added to the model after it was stored)."""
        if self.dialect == "sqlite":
            return sa.func.json_type(self.doc, self.path).is_(None)
        return self._node().is_(None)

    def null(self) -> Any:
        """The document holds the field as JSON ``null``."""
        if self.dialect == "postgresql":
            return sa.func.jsonb_typeof(self._node()) == "null"
        if self.dialect == "sqlite":
            return sa.func.json_type(self.doc, self.path) == "null"
        return sa.func.json_type(self._node()) == "NULL"

    def null_or_absent(self) -> Any:
        if self.dialect in ("postgresql", "sqlite"):
            return self.text().is_(None)
        return sa.func.coalesce(sa.func.json_type(self._node()), "NULL") == "NULL"

    def equals(self, value: Any, stored: Any) -> Any:
        """The field equals ``value``, whose JSON is ``stored`` (not ``None``)."""
        if not (kept_everywhere(value) and kept_everywhere(stored)):
            return sa.false()
        if isinstance(stored, bool):
            return self._boolean(stored)
        if isinstance(value, Decimal) and isinstance(stored, str):
            return self._decimal(value)
        if isinstance(value, datetime) and isinstance(stored, str) and _in_utc(value):
            # An instant, in whatever offset it was stored (a naive datetime is no
            # instant: it compares as its text, and only with naive ones).
            return self._instant(value)
        if isinstance(value, (set, frozenset)) and isinstance(stored, list) and _scalars(stored):
            return self._set(stored)
        if isinstance(stored, (int, float)):
            return self._number(stored)
        if isinstance(stored, (dict, list)):
            return self._json(stored)
        return self._string(stored)

    def _string(self, stored: str) -> Any:
        # The text, and a JSON string: PostgreSQL's ->> and MariaDB's JSON_UNQUOTE spell
        # a number or a boolean as text too ("12", "true"), which no text equals in
        # Python. (The text comparison first, for the expression index the docs show.)
        if self.dialect == "postgresql":
            return sa.and_(self.text() == stored, self._json_type("string"))
        if self.dialect == "sqlite":
            return self.text() == stored  # json_extract gives a number as a number
        # MariaDB compares text as PAD SPACE ("ABC" equals "ABC  "): the lengths too.
        return sa.and_(
            self.text() == stored,
            sa.func.char_length(self.text()) == len(stored),
            self._json_type("STRING"),
        )

    def _typed(self, json_type: str, kind: Any) -> Any:
        """PostgreSQL: the field's text cast to ``kind`` when the document holds it as
        a JSON ``json_type``, else NULL: a field whose type admits others (``int | str``,
        ``Any``) may hold a text the cast would refuse ("A-12" as a number), or read
        otherwise ("yes" as a boolean). A CASE, as PostgreSQL evaluates an AND's
        operands in any order; the expression the docs' indexes are written on."""
        return sa.case((self._json_type(json_type), sa.cast(self.text(), kind)))

    def _json_type(self, *names: str) -> Any:
        """The document holds the field as a JSON value of one of these types (by the
        name the dialect gives them), written in the query as a constant: an index's
        expression matches a constant, not a parameter (a prepared statement's plan)."""
        typeof = sa.func.jsonb_typeof if self.dialect == "postgresql" else sa.func.json_type
        kinds: list[Any] = [sa.literal_column(f"'{name}'") for name in names]
        node = typeof(self._node())
        return node == kinds[0] if len(kinds) == 1 else node.in_(kinds)

    def _boolean(self, stored: bool) -> Any:
        if self.dialect == "postgresql":
            return self._typed("boolean", sa.Boolean) == stored
        if self.dialect == "sqlite":
            # A JSON boolean: json_extract reads true as 1, as it reads the number 1.
            kinds = ("true", "false")
            return sa.and_(self.text() == int(stored), self._sqlite_type().in_(kinds))
        # A JSON boolean, not the text "true" (JSON_UNQUOTE spells both alike).
        return sa.and_(
            self.text() == ("true" if stored else "false"),
            self._json_type("BOOLEAN"),
        )

    def _sqlite_type(self) -> Any:
        """SQLite: the JSON type of the field (``integer``, ``real``, ``true``...)."""
        return sa.func.json_type(self.doc, self.path)

    def _number(self, stored: float) -> Any:
        if self.dialect == "postgresql":
            # An integer as numeric, which reads any JSON number ("12.0", "1e+20": a
            # bigint cast refuses them), exactly; a float as a double, as Python
            # compares it.
            kind: Any = sa.Numeric() if isinstance(stored, int) else sa.Float()
            return self._typed("number", kind) == stored
        if self.dialect == "sqlite":
            # json_extract gives SQLite a number; a JSON number, not true read as 1.
            numbers = ("integer", "real")
            return sa.and_(self._node() == stored, self._sqlite_type().in_(numbers))
        # MariaDB's JSON compares the text "12" equal to 12: a JSON number only.
        return sa.and_(self._node() == stored, self._json_type("INTEGER", "DOUBLE", "DECIMAL"))

    def _decimal(self, value: Decimal) -> Any:
        # The stored text ("10.50", "1E+2") as a number: exact on PostgreSQL (numeric),
        # SQLite (lf_decimal, a function of leadfunnel's connections: see
        # sqlite_decimal) and MariaDB (its digits and exponent, see _MariaDecimalKey).
        if value.is_nan():
            return sa.false()  # equal to nothing, itself included, as in Python
        if value.is_infinite():
            return self.text() == str(value)  # "Infinity", "-Infinity", as written
        if self.dialect == "postgresql":
            # Only a text that spells a number (a Decimal's JSON, or a JSON number):
            # a field that admits others may hold one the cast refuses ("A-12").
            spelt = self.text().op("~", return_type=sa.Boolean)(_NUMBER_TEXT)
            return sa.case((spelt, sa.cast(self.text(), sa.Numeric()))) == value
        near = float(value)
        if self.dialect == "sqlite":
            exact = sa.func.lf_decimal(self.text()) == _decimal_key(value)
        else:
            exact = _MariaDecimalKey(self.text()) == _adjusted_key(value)
            if _fits_decimal_65_30(value):
                # DECIMAL(65, 30) first, which rounds a longer fraction: the digits
                # only for the rows equal there.
                return sa.and_(sa.cast(self.text(), sa.Numeric(65, 30)) == value, exact)
        # The database's own (inexact) number first: the exact comparison only for the
        # rows near (on SQLite, a Python call). Beyond a double's range, the exact one
        # only (MariaDB refuses an infinite parameter).
        low, high = near - abs(near) * 1e-9, near + abs(near) * 1e-9
        if not (math.isfinite(low) and math.isfinite(high)):
            return exact
        if self.dialect == "sqlite":
            number: Any = sa.cast(self.text(), sa.Float)
        else:  # a double (MariaDB's CAST to FLOAT is single precision: 3.4E+38 at most)
            number = sa.type_coerce(self.text(), sa.Float) + sa.literal_column("0E0")
        return sa.and_(number.between(low, high), exact)

    def _instant(self, value: datetime) -> Any:
        exact = _DocInstant(self.text()) == value
        if self.dialect == "postgresql":
            return exact
        if self.dialect == "sqlite":
            # SQLite's julianday() (to the millisecond) first: lf_instant, a Python
            # call, only for the rows within a second of the instant.
            day = (value - s.EPOCH) / timedelta(days=1) + _JULIAN_EPOCH
            julian = sa.func.julianday(self.text())
            near: Any = julian.between(day - _SECOND, day + _SECOND)
            if value >= _LAST_SECOND:
                # julianday() rounds to the millisecond, and is NULL for an instant it
                # rounds past 9999-12-31: those rows go to the exact comparison too.
                near = sa.or_(near, julian.is_(None))
            return sa.and_(near, exact)
        # MariaDB: the local date first (an offset moves it a day at most), a plain
        # text comparison, so that the long conversion runs for the rows near only.
        utc = value.astimezone(UTC)
        first, last = (
            (utc + timedelta(days=n) if _in_range(utc, n) else utc).date().isoformat()
            for n in (-1, 1)
        )
        return sa.and_(sa.func.left(self.text(), 10).between(first, last), exact)

    def _set(self, stored: list[Any]) -> Any:
        # Sets are stored as arrays in the order they were iterated when written: equal
        # as sets when of the same length and each holds all of the other's items.
        if self.dialect == "postgresql":
            items = sa.cast(dump_json(stored), self.doc.type)
            node = self._node()
            return sa.and_(node.op("@>")(items), node.op("<@")(items))
        if self.dialect == "sqlite":
            length = sa.func.json_array_length(self.doc, self.path)
            if not stored:
                return length == 0
            each = sa.func.json_each(self.doc, self.path).table_valued("value")
            inside = (
                sa.select(sa.func.count()).select_from(each).where(each.c.value.in_(stored))
            ).scalar_subquery()
            return sa.and_(length == len(stored), inside == len(stored))
        node = self._node()
        return sa.and_(
            sa.func.json_length(node) == len(stored),
            sa.func.json_contains(node, dump_json(stored)) == 1,
        )

    def _json(self, stored: Any) -> Any:
        # By value, as Python compares dicts and lists: a dict's keys in any order, a
        # number by its value (1 is 1.0). PostgreSQL's jsonb and MySQL's JSON compare
        # so; SQLite compares canonical texts (lf_json, a function of leadfunnel's
        # connections: see sqlite_json), MariaDB normalised ones (see _JsonValue).
        if self.dialect == "postgresql":
            return self._node() == sa.cast(dump_json(stored), self.doc.type)
        if self.dialect == "sqlite":
            kind = "object" if isinstance(stored, dict) else "array"
            return sa.and_(
                sa.func.json_type(self.doc, self.path) == kind,
                sa.func.lf_json(self.text()) == canonical_json(stored),
            )
        return _JsonValue(self._node()) == _JsonValue(sa.literal(dump_json(stored)))


#: The Julian day of 1970-01-01T00:00Z, and one second in days (see DocField.equals).
_JULIAN_EPOCH = 2440587.5
_SECOND = 1 / 86400
# The last second of the calendar, where julianday() may round past its end.
_LAST_SECOND = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _in_utc(value: datetime) -> bool:
    """Whether ``value`` is aware and its instant has a UTC datetime (not before year 1
    nor after 9999, where ``At`` parameters could not be bound)."""
    if value.utcoffset() is None:
        return False
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def _in_range(when: datetime, days: int) -> bool:
    """Whether ``when`` moved by ``days`` is still a datetime (years 1 to 9999)."""
    try:
        when + timedelta(days=days)
    except OverflowError:
        return False
    return True


def _scalars(items: list[Any]) -> bool:
    return all(isinstance(i, (str, int, float)) and not isinstance(i, bool) for i in items)


class _DocInstant(FunctionElement[datetime]):
    """The instant an ISO 8601 text names, when it has an offset (``Z`` or ``+hh:mm``,
    as pydantic writes an aware datetime; NULL for a naive one), in the type of
    ``At`` columns so that it compares with a parameter bound as they bind it: an
    integer of microseconds on SQLite (see :func:`sqlite_instant`), a ``timestamptz``
    on PostgreSQL, a UTC ``DATETIME(6)`` on MariaDB. Exact to the microsecond."""

    type = s.At
    name = "doc_instant"
    inherit_cache = True


@compiles(_DocInstant)
def _doc_instant_sqlite(element: _DocInstant, compiler: Any, **kw: Any) -> str:
    (text,) = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"lf_instant({text})"


@compiles(_DocInstant, "postgresql")
def _doc_instant_postgresql(element: _DocInstant, compiler: Any, **kw: Any) -> str:
    # Not indexable: a text's cast to timestamptz is only STABLE (it reads TimeZone for
    # a text without offset, which the CASE leaves out).
    (text,) = (compiler.process(clause, **kw) for clause in element.clauses)
    # Only a text written as pydantic writes an aware datetime is cast: another text of
    # a field that holds several types ("XYZ" in an Any field) would fail the cast.
    return f"CASE WHEN {text} ~ {_AWARE_ISO} THEN CAST({text} AS TIMESTAMPTZ) END"


#: An aware datetime's text as pydantic writes it (``Z`` or an offset), as a SQL literal:
#: only such a text is read as an instant (another, in a field holding several types,
#: would fail PostgreSQL's cast and be half read by MariaDB's).
_AWARE_ISO = (
    "'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?"
    "(Z|[+-][0-9][0-9]:[0-9][0-9](:[0-9][0-9])?)$'"
)


@compiles(_DocInstant, "mysql")
@compiles(_DocInstant, "mariadb")
def _doc_instant_mysql(element: _DocInstant, compiler: Any, **kw: Any) -> str:
    # MariaDB reads no offset: the local time less the offset's minutes, in UTC.
    (t,) = (compiler.process(clause, **kw) for clause in element.clauses)
    sign = f"SUBSTRING({t}, -6, 1)"

    def local(cut: int) -> str:
        return f"CAST(REPLACE(LEFT({t}, CHAR_LENGTH({t}) - {cut}), 'T', ' ') AS DATETIME(6))"

    minutes = (
        f"(CASE WHEN {sign} = '-' THEN 1 ELSE -1 END) * "
        f"(CAST(SUBSTRING({t}, -5, 2) AS SIGNED) * 60 + CAST(SUBSTRING({t}, -2) AS SIGNED))"
    )
    return (
        f"CASE WHEN NOT {t} REGEXP {_AWARE_ISO} THEN NULL "
        f"WHEN RIGHT({t}, 1) = 'Z' THEN {local(1)} "
        f"WHEN {sign} IN ('+', '-') THEN TIMESTAMPADD(MINUTE, {minutes}, {local(6)}) END"
    )


def _decimal_key(value: Decimal) -> str | None:
    """A finite ``Decimal``'s number as one text whatever its form ("10.50", "10.5",
    "1.05E+1": "105e-1"; every zero "0"), exactly (no rounding context); ``None``
    for NaN and the infinities, which equal nothing here."""
    if not value.is_finite():
        return None
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    kept = "".join(map(str, digits)).lstrip("0")
    if not kept:
        return "0"
    stripped = kept.rstrip("0")
    exponent += len(kept) - len(stripped)
    return f"{'-' if sign else ''}{stripped}e{exponent}"


def sqlite_decimal(value: Any) -> str | None:
    """SQLite's ``lf_decimal(x)``: :func:`_decimal_key` of a stored number's text (or
    JSON number); ``None`` for anything else. Never raises (SQLite would fail the
    query)."""
    try:
        if isinstance(value, str):
            return _decimal_key(Decimal(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _decimal_key(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        pass
    return None


def canonical_json(value: Any) -> str:
    """JSON ``value`` (as ``json.loads`` gives it) as one text whatever the order of its
    dicts' keys and the form of its numbers (``1``, ``1.0`` and ``1e0`` are one, as
    :func:`_decimal_key` writes it): equal texts for equal values, as PostgreSQL's
    jsonb compares them."""
    if isinstance(value, dict):
        items = sorted((str(k), canonical_json(v)) for k, v in value.items())
        return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float, Decimal)):
        key = _decimal_key(value if isinstance(value, Decimal) else Decimal(repr(value)))
        if key is not None:
            return key
    raise ValueError(f"not JSON: {value!r}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def sqlite_json(value: Any) -> str | None:
    """SQLite's ``lf_json(x)``: :func:`canonical_json` of a JSON text; ``None`` for
    anything else. Never raises (SQLite would fail the query)."""
    if not isinstance(value, str):
        return None
    try:
        return canonical_json(
            json.loads(value, parse_float=Decimal, parse_int=Decimal, parse_constant=_no_constant)
        )
    except (ArithmeticError, ValueError, RecursionError):
        return None


def _adjusted_key(value: Decimal) -> str | None:
    """A finite ``Decimal``'s number as :class:`_MariaDecimalKey` writes a text's: its
    sign, its digits without leading or trailing zeros, ``e`` and the exponent of its
    first digit ("10.50": "105e1"; every zero "0"); ``None`` for NaN and infinities."""
    if not value.is_finite():
        return None
    sign, digits, _ = value.as_tuple()
    kept = "".join(map(str, digits)).strip("0")
    if not kept:
        return "0"
    return f"{'-' if sign else ''}{kept}e{value.adjusted()}"


def _fits_decimal_65_30(value: Decimal) -> bool:
    """Whether ``DECIMAL(65, 30)`` holds ``value`` exactly (35 integer digits, 30
    decimal places)."""
    if not value.is_finite() or value.is_zero():
        return True
    normal = value.as_tuple()
    digits = "".join(map(str, normal.digits)).rstrip("0")
    assert isinstance(normal.exponent, int)
    last = normal.exponent + len(normal.digits) - len(digits)  # its last digit's exponent
    return value.adjusted() < 35 and last >= -30


class _JsonValue(FunctionElement[Any]):
    """MySQL and MariaDB: a JSON text or value as one that compares by value with
    another (a dict's keys in any order, numbers by value): ``JSON_NORMALIZE`` on
    MariaDB (10.7 and later; its JSON is text, compared as written), the JSON value on
    MySQL (whose JSON compares so)."""

    type = sa.String()
    name = "json_value"
    inherit_cache = True


@compiles(_JsonValue, "mysql")
@compiles(_JsonValue, "mariadb")
def _json_value_mysql(element: _JsonValue, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(clause, **kw) for clause in element.clauses)
    if getattr(compiler.dialect, "is_mariadb", False):
        return f"JSON_NORMALIZE({value})"
    return f"JSON_EXTRACT({value}, '$')"


class _MariaDecimalKey(FunctionElement[str]):
    """MariaDB: a number's text ("-1.50E+40", "0.0012", a JSON number) as
    :func:`_adjusted_key` writes the ``Decimal`` of it, from its digits (exact where
    ``DECIMAL(65, 30)`` is not); NULL for a text that is no number."""

    type = sa.String()
    name = "maria_decimal_key"
    inherit_cache = True


@compiles(_MariaDecimalKey, "mysql")
@compiles(_MariaDecimalKey, "mariadb")
def _maria_decimal_key(element: _MariaDecimalKey, compiler: Any, **kw: Any) -> str:
    (t,) = (compiler.process(clause, **kw) for clause in element.clauses)
    # The mantissa's digits (sign and point left out), and the exponent written after E.
    mantissa = f"REGEXP_REPLACE({t}, '^-|[eE].*$', '')"
    digits = f"REPLACE({mantissa}, '.', '')"
    kept = f"TRIM(TRAILING '0' FROM TRIM(LEADING '0' FROM {digits}))"
    exponent = f"COALESCE(CAST(REGEXP_SUBSTR({t}, '(?<=[eE])[-+]?[0-9]+$') AS SIGNED), 0)"
    whole = f"CHAR_LENGTH(SUBSTRING_INDEX({mantissa}, '.', 1))"
    zeros = f"(CHAR_LENGTH({digits}) - CHAR_LENGTH(TRIM(LEADING '0' FROM {digits})))"
    number = "'^-?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$'"
    return (
        f"CASE WHEN {t} NOT REGEXP {number} THEN NULL "
        f"WHEN {kept} = '' THEN '0' "
        f"ELSE CONCAT(CASE WHEN LEFT({t}, 1) = '-' THEN '-' ELSE '' END, {kept}, 'e', "
        f"{exponent} + {whole} - {zeros} - 1) END"
    )


def sqlite_instant(value: Any) -> int | None:
    """SQLite's ``lf_instant(x)``: the instant an ISO 8601 text with an offset names, in
    microseconds since 1970 UTC (as SQLite stores ``At`` columns); ``None`` for a text
    without offset (a naive datetime) or anything else. Never raises."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    if instant.utcoffset() is None:
        return None
    return s.to_sqlite_micros(instant)
