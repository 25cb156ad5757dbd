"""The facade: :class:`Funnel`, the one object an application talks to.

``Funnel`` holds the configuration (repository, engine, cadence, clock, router) and
hands each call to the use case that does the work, one module each:

=====================  ======================================================
``_people``            add, capture, update, avoid
``_leads``             farm, respond, qualify, disqualify, qualify_all
``_conversion``        set_appointment (lead -> contact + opportunity)
``_deals``             sit, propose, send_contract, win, lose, reschedule
``_follow_ups``        touch (``due`` is :func:`leadfunnel._cadence.follow_ups`)
``_merging``           similar, merge, unmerge
``_importing``         import_leads
``_reports``           report; ``_rep_lists``: rep_list
=====================  ======================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from os import PathLike
from typing import Any, Generic, Literal, TypeVar, overload
from uuid import UUID

import typing_extensions

from . import _conversion, _deals, _follow_ups, _leads, _merging, _people, _privacy
from ._cadence import CadencePolicy, FollowUp
from ._changes import (
    LOOKS,
    DealSubject,
    LeadSubject,
    Subject,
    clock_scoped,
    clock_told,
    get_or_merged,
    load,
    looks_personal,
    member,
    mistyped_id,
    require_aware,
    retrying,
    subject_id,
)
from ._clock import Clock, SystemClock, in_utc
from ._comparison import FunnelComparison
from ._enums import Channel, ContactType, LeadStatus, LostReason, Outcome, Stage
from ._errors import ConfigError, InvalidArgumentError, LeadFunnelError, NotFoundError
from ._importing import ImportIssue, ImportReport
from ._memory import InMemoryRepository
from ._merging import FREE_MAIL_DOMAINS
from ._models import (
    DEFAULT_PHONE_REGION,
    Contact,
    Event,
    Lead,
    Opportunity,
    SubjectKind,
    Touch,
    field_values,
    normalise_phone,
    phone_region_of,
)
from ._people import Captured
from ._privacy import Erasure
from ._protocols import Engine, Router
from ._qualification import QualificationResult, check_field_rules
from ._rep_lists import RepList, RepListName
from ._reports import FunnelReport
from ._repository import Cursor, GroupBy, Repository
from ._suppression import Suppressor

# Every name the signatures use is imported at run time, none only for type checkers:
# typing.get_type_hints (FastAPI given a method as an endpoint, pydantic's
# validate_call) reads them from this module.

__all__ = ["FREE_MAIL_DOMAINS", "Funnel", "ImportIssue", "ImportReport", "Router", "Subject"]

_R = TypeVar("_R", bound=Lead | Contact | Opportunity)
_P = TypeVar("_P", bound=Lead | Contact)

# The classes a funnel reads its records as, for type checkers: ``Funnel(repo,
# lead_model=MyLead)`` is a ``Funnel[MyLead, Contact, Opportunity]``, ``Funnel(repo)`` a
# ``Funnel[Lead, Contact, Opportunity]`` (the defaults, PEP 696). Covariant, so that a
# ``Funnel[MyLead, ...]`` is a ``Funnel`` wherever one is expected (a helper typed
# ``funnel: Funnel`` takes every funnel); hence parameters take the base classes (a
# plain ``Lead`` is stored as ``MyLead``). Reads, triggers and calls given an id return
# these; ``add``, ``update``, ``avoid``, ``merge`` and ``unmerge`` given a record return
# its own class (``_P``, ``_R``): ``add`` and ``update`` refuse a class the store would
# not read back as an instance of it, and the others are given records read from the
# store. So a ``funnel: Funnel`` helper that adds a ``MyLead`` keeps it. The store
# returns the registered classes, which ``__init__`` made these: the ``type:
# ignore[return-value]`` comments below say so without a ``cast`` per call.
LeadT = typing_extensions.TypeVar("LeadT", bound=Lead, default=Lead, covariant=True)
ContactT = typing_extensions.TypeVar("ContactT", bound=Contact, default=Contact, covariant=True)
OpportunityT = typing_extensions.TypeVar(
    "OpportunityT", bound=Opportunity, default=Opportunity, covariant=True
)


class Funnel(Generic[LeadT, ContactT, OpportunityT]):
    """A lead funnel over a repository: the one object an application talks to.

    ``Funnel()`` keeps everything in memory; pass ``SqlRepository(url)`` to persist.
    Every method that changes something takes the subject (a model or its id),
    ``at=`` (default: ``clock.now()``), ``actor=`` and ``reason=``, checks the move
    against the lifecycle, stores the change and one event per changed record
    atomically, and returns the fresh record.

    Generic in the classes it reads records as: type checkers infer
    ``Funnel[MyLead, MyContact, MyDeal]`` from ``Funnel(repo, lead_model=MyLead,
    contact_model=MyContact, opportunity_model=MyDeal)``, and reads and triggers
    return those classes (a kind not given is the base class).
    """

    def __init__(
        self,
        repository: Repository | None = None,
        *,
        engine: Engine | None = None,
        cadence: CadencePolicy | None = None,
        clock: Clock | None = None,
        router: Router | None = None,
        phone_region: str = "US",
        free_mail_domains: Iterable[str] = FREE_MAIL_DOMAINS,
        suppression_secret: str | bytes | None = None,
        lead_model: type[LeadT] | None = None,
        contact_model: type[ContactT] | None = None,
        opportunity_model: type[OpportunityT] | None = None,
    ) -> None:
        _check_collaborators(repository, engine, cadence, router, clock)
        self.repository: Repository = repository if repository is not None else InMemoryRepository()
        if opportunity_model is not None:
            # A deal class set_appointment could never make (a required field of its
            # own): refused before the store is told of it.
            _conversion.check_opportunity_model(opportunity_model)
        if lead_model or contact_model or opportunity_model:
            # The application's subclasses, with its own fields: the store reads them.
            # A kind not given keeps the class the store reads it as.
            self.repository.use_models(
                lead=lead_model, contact=contact_model, opportunity=opportunity_model
            )
        check_field_rules(engine, self.lead_model)
        self.engine = engine
        self._cadence = cadence
        self.clock: Clock = clock if clock is not None else SystemClock()
        _check_clock(self.clock)
        self.router = router
        if phone_region != DEFAULT_PHONE_REGION:  # (the default needs no phonenumbers)
            try:
                phone_region = phone_region_of(phone_region)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self.phone_region = phone_region
        self.free_mail_domains = _free_mail_domains(free_mail_domains)
        self._context = {"phone_region": phone_region}
        self._suppressor = Suppressor(self.repository, suppression_secret)
        use_clock = getattr(router, "use_clock", None)
        if callable(use_clock):
            use_clock(self.clock)  # a router with capacity counts days on this clock

    @property
    def lead_model(self) -> type[LeadT]:
        """The class leads are stored and read as (``Lead`` or the application's own)."""
        return self.repository.models["lead"]  # type: ignore[return-value]

    @property
    def contact_model(self) -> type[ContactT]:
        """The class contacts are stored and read as."""
        return self.repository.models["contact"]  # type: ignore[return-value]

    @property
    def opportunity_model(self) -> type[OpportunityT]:
        """The class opportunities are stored and read as."""
        return self.repository.models["opportunity"]  # type: ignore[return-value]

    def _as_model(self, record: _P) -> _P:
        """``record`` as the registered class of its kind (a plain ``Lead`` becomes the
        application's ``MyLead``, its own fields at their defaults), validated: a record
        made with ``model_copy(update=...)`` or ``model_construct`` never was, and may
        hold what its class refuses (a bad e-mail, a negative count, a field's own
        constraint), which a store would keep and no read could give back."""
        model = self._model_of(record, "store")
        if not issubclass(model, type(record)):
            # Anything else would be read back as ``model``, losing its own fields.
            raise InvalidArgumentError(
                f"this funnel stores {record.kind}s as {model.__name__}, not "
                f"{type(record).__name__}: register it with "
                f"Funnel(..., {record.kind}_model={type(record).__name__})"
            )
        return model.model_validate(field_values(record), context=self._context)

    def _model_of(self, record: object, doing: str) -> type[Lead | Contact | Opportunity]:
        """The registered class of ``record``'s kind; ``record`` must be a record."""
        if not isinstance(record, (Lead, Contact, Opportunity)):
            raise InvalidArgumentError(
                f"cannot {doing} {record!r}: give a Lead, Contact or Opportunity "
                f"(a {type(record).__name__} is not a record; read a stored one with get())"
            )
        return self.repository.models[record.kind]

    @property
    def cadence(self) -> CadencePolicy:
        """The follow-up cadence (the default policy unless one was given)."""
        if self._cadence is None:
            from ._cadence import CadencePolicy

            self._cadence = CadencePolicy()
        return self._cadence

    def __repr__(self) -> str:
        return f"Funnel({self.repository!r}, engine={self.engine!r}, clock={self.clock!r})"

    def _now(self, at: datetime | None) -> datetime:
        """When a change happens: ``at`` or the clock's now, as an instant in UTC. A
        time kept in a zone with daylight saving would add the cadence's waits on its
        wall clock (an hour off across a change), where every SQL store adds them to
        the instant.

        The clock's now is noted for the change (see :func:`~leadfunnel._changes.moved`):
        a move dated at or after it is not held back by a change dated ahead of it."""
        now = in_utc(self.clock.now())
        clock_told(self.clock, now, dated_by_it=at is None)
        return now if at is None else in_utc(require_aware(at))

    @staticmethod
    def _id(subject: Subject) -> UUID:
        return subject_id(subject)

    # --- people -----------------------------------------------------------------------

    @clock_scoped
    def add(
        self,
        record: _P,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> _P:
        """Store a new lead (suspect, farm_list, raw or avoid) or contact.

        Raises :class:`DuplicateError` if a stored lead or contact has the same e-mail
        or phone, :class:`AvoidListedError` if that record is avoid-listed.
        """
        return _people.add(  # type: ignore[return-value]  # the same kind as ``record``
            self.repository,
            self._as_model(record),
            now=self._now(at),
            actor=actor,
            reason=reason,
            router=self.router,
            suppressor=self._suppressor,
        )

    def capture(
        self,
        lead: Lead,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> LeadT | ContactT:
        """Record an inbound response and return the record that carries it.

        A new person becomes a raw lead. A known one (same e-mail or phone) is not
        duplicated: a suspect or farm-list lead responds (moves to raw), anyone else
        gets a ``capture`` event; either way its empty fields are filled from ``lead``.
        A match on the avoid list raises :class:`AvoidListedError` and records nothing.
        :meth:`capture_result` also says whether the record is new.
        """
        return self.capture_result(  # type: ignore[return-value]
            lead, at=at, actor=actor, reason=reason
        ).record

    @clock_scoped
    def capture_result(
        self,
        lead: Lead,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Captured:
        """:meth:`capture`, telling what it did: a :class:`Captured` with the record,
        ``new`` (a lead made just now, or a known person) and the event recorded."""
        if isinstance(lead, (Contact, Opportunity)):
            raise InvalidArgumentError(
                f"capture takes the response as a Lead, not {type(lead).__name__}: a known "
                "contact is found by the lead's e-mail or phone and given the response"
            )
        return _people.capture(
            self.repository,
            self._as_model(lead),
            now=self._now(at),
            actor=actor,
            reason=reason,
            router=self.router,
            suppressor=self._suppressor,
        )

    @clock_scoped
    def import_leads(
        self,
        rows: Iterable[Mapping[str, Any] | Lead | Contact],
        *,
        status: LeadStatus | str | None = None,
        carry_over: bool = False,
        chunk_size: int | None = None,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
        on_progress: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        """Add many leads (and contacts); never raises for one bad row.

        Rows are mappings of ``Lead`` fields (or ``Lead`` objects); a row with a
        ``type`` (or a ``Contact``) is stored as a contact. A row's own ``created_at``
        (aware) dates the record and its ``import`` events; others are dated ``at``.
        ``status`` is given to every lead row; ``carry_over=True`` keeps a row's
        ``qualified`` or ``unqualified`` status as it stands in the CRM the rows come
        from. Each row lands in one list of the returned :class:`ImportReport`:
        ``added`` (``contacts`` says which became contacts), ``duplicates`` (of a stored
        record or of an earlier row), ``avoided`` or ``rejected`` (with the reason).

        Rows are stored a chunk at a time, each chunk in one transaction, so memory stays
        flat however long ``rows`` is: 1,000 rows first, then twice as many each time up
        to 10,000 rows, each chunk also ended at about 8 MB of text; ``chunk_size=n``
        stores ``n`` rows per transaction instead. The chunks are one
        :meth:`Repository.loading` block (a long import into a small SQLite store builds
        some indexes once, at its end). ``on_progress(report)`` is called
        after each chunk, and with what was stored before a failing store's error is
        raised.
        """
        from ._importing import import_leads

        return import_leads(
            self.repository,
            rows,
            status=member(LeadStatus, status, "status") if status is not None else None,
            carry_over=carry_over,
            chunk_size=chunk_size,
            at=self._now(at),
            now=(lambda: self._now(None)) if at is None else None,
            actor=actor,
            reason=reason,
            on_progress=on_progress,
            phone_region=self.phone_region,
            router=self.router,
            suppressor=self._suppressor,
            models=self.repository.models,
        )

    @clock_scoped
    def update(
        self,
        record: _R,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> _R:
        """Save edited fields of a stored record, if nobody saved it in between.

        A stale copy raises :class:`ConcurrencyError`; a changed state (status, type,
        stage) raises :class:`InvalidTransitionError`: states move only by triggers.
        """
        model = self._model_of(record, "update")
        if type(record) is not model:
            # A plain Lead where MyLead is stored would save MyLead's own fields at
            # their defaults: refuse it rather than lose them.
            raise InvalidArgumentError(
                f"this funnel stores {record.kind}s as {model.__name__}, not "
                f"{type(record).__name__}: edit the {model.__name__} that get() returns "
                f"(funnel.get({str(record.id)!r}).model_copy(update=...)) and update that"
            )
        return _people.update(
            self.repository,
            record,
            now=self._now(at),
            actor=actor,
            reason=reason,
            context=self._context,
            suppressor=self._suppressor,
        )

    @overload
    def avoid(
        self,
        subject: _P,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> _P: ...

    @overload
    def avoid(
        self,
        subject: UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> LeadT | ContactT: ...

    @clock_scoped
    @retrying
    def avoid(
        self,
        subject: Lead | Contact | UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Put a lead or contact on the avoid list: never market to them again.

        Avoiding a converted lead avoids the contact it became too. An avoided contact's
        open deals are closed as lost, reason ``avoid``, in the same change: nobody
        should go on selling to them. Avoiding an avoided record changes and records
        nothing.
        """
        return _people.avoid(
            self.repository, self._id(subject), now=self._now(at), actor=actor, reason=reason
        )

    # --- lead triggers ----------------------------------------------------------------

    @clock_scoped
    def _lead_move(
        self,
        lead: LeadSubject,
        trigger: str,
        at: datetime | None,
        actor: str | None,
        reason: str | None,
    ) -> LeadT:
        return _leads.move_lead(  # type: ignore[return-value]
            self.repository,
            self._id(lead),
            trigger,
            now=self._now(at),
            actor=actor,
            reason=reason,
            router=self.router,
        )

    @retrying
    def farm(
        self,
        lead: LeadSubject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> LeadT:
        """A suspect fits the profile on paper: move it to the farm list."""
        return self._lead_move(lead, "farm", at, actor, reason)

    @retrying
    def respond(
        self,
        lead: LeadSubject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> LeadT:
        """A suspect or farm-list lead showed interest: it becomes a raw lead."""
        return self._lead_move(lead, "respond", at, actor, reason)

    @retrying
    def disqualify(
        self,
        lead: LeadSubject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> LeadT:
        """Reviewed and unfit: the lead stays on the list for e-mail drip only."""
        return self._lead_move(lead, "disqualify", at, actor, reason)

    @clock_scoped
    @retrying
    def qualify(
        self,
        lead: LeadSubject,
        *,
        force: bool = False,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> QualificationResult:
        """Judge a raw (or unqualified) lead with the engine and move it accordingly.

        A fit qualifies it (tagged ``sweet-spot``, ``profile`` recorded); missing data
        leaves it raw; hard failures in every profile disqualify it at once; soft
        failures disqualify it only once it has had a ``call`` touch. ``force=True``
        qualifies by hand, without the engine. One ``qualify`` event is recorded
        whatever the outcome; the result's ``status`` says where the lead went.
        """
        return _leads.qualify(
            self.repository,
            self._id(lead),
            engine=self.engine,
            force=force,
            now=self._now(at),
            actor=actor,
            reason=reason,
        )

    @clock_scoped
    def qualify_all(
        self,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
        status: LeadStatus | str = LeadStatus.RAW,
        page_size: int = _leads.PAGE_SIZE,
        on_error: Callable[[LeadFunnelError], object] | None = None,
    ) -> dict[str, int]:
        """Qualify every lead with ``status`` (raw by default); count where they went.

        Returns a mapping with ``qualified``, ``unqualified``, ``waiting`` (left raw:
        missing data, or a soft failure waiting for a call), ``skipped`` (leads that
        moved under our feet, and erased people's leads, which keep their status and
        which nothing may change: ``qualify`` refuses them) and ``failed`` (leads a rule
        failed on, with ``on_error``). Leads are judged ``page_size`` at a time, each
        page stored in one transaction (memory stays flat; a run stopped at any moment
        loses nothing, and the next one finishes the job); a lead that stays where it
        is keeps its version. Each lead gets one ``qualify`` event whose data is the
        result without the rules' explanations (``qualify(lead)`` records those). Each
        page is dated when it is judged (``at=`` dates the whole run instead).

        A rule that fails on a lead (raises, or answers something other than a
        ``Verdict``) stops the run with its :class:`RuleError`, the pages before stored;
        so does a lead the application's lead class refuses as moved
        (:class:`InvalidTransitionError`: its validator wants what the lead lacks).
        Given ``on_error``, the run goes on instead: that lead is left as it is (no
        change, no event; the next run judges it again), and ``on_error`` is called
        with the error once the lead's page is stored. It may log or collect it, or
        raise to stop the run there.
        """
        fixed = None if at is None else self._now(at)
        return _leads.qualify_all(
            self.repository,
            engine=self.engine,
            status=member(LeadStatus, status, "status"),
            now=(lambda: self._now(None)) if fixed is None else lambda: fixed,
            actor=actor,
            reason=reason,
            page_size=page_size,
            on_error=on_error,
        )

    # --- appointments and deals -------------------------------------------------------

    @clock_scoped
    @retrying
    def set_appointment(
        self,
        subject: Lead | Contact | UUID | str,
        appointment_at: datetime | None = None,
        owner: str | None = None,
        setter: str | None = None,
        force: bool = False,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> OpportunityT:
        """Book an appointment: open an opportunity at ``appointment_set``.

        A qualified lead (a raw one with ``force=True``) is converted into a prospect
        contact first; an existing contact (prospect or client; unqualified with
        ``force=True``) just gets a new opportunity.
        """
        now = self._now(at)
        if appointment_at is not None:
            appointment_at = require_aware(appointment_at, "appointment_at")
        return _conversion.set_appointment(  # type: ignore[return-value]
            self.repository,
            self._id(subject),
            contact_model=self.contact_model,
            opportunity_model=self.opportunity_model,
            appointment_at=appointment_at,
            owner=owner,
            setter=setter,
            force=force,
            now=now,
            actor=actor,
            reason=reason,
        )

    @clock_scoped
    def _deal_move(
        self,
        deal: DealSubject,
        trigger: str,
        at: datetime | None,
        actor: str | None,
        reason: str | None,
    ) -> OpportunityT:
        return _deals.move_deal(  # type: ignore[return-value]
            self.repository, self._id(deal), trigger, now=self._now(at), actor=actor, reason=reason
        )

    @retrying
    def sit(
        self,
        opportunity: DealSubject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> OpportunityT:
        """The appointment took place."""
        return self._deal_move(opportunity, "sit", at, actor, reason)

    @retrying
    def propose(
        self,
        opportunity: DealSubject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> OpportunityT:
        """A proposal is on the table; negotiating."""
        return self._deal_move(opportunity, "propose", at, actor, reason)

    @retrying
    def send_contract(
        self,
        opportunity: DealSubject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> OpportunityT:
        """The contract went out."""
        return self._deal_move(opportunity, "send_contract", at, actor, reason)

    @clock_scoped
    @retrying
    def win(
        self,
        opportunity: DealSubject,
        *,
        amount: Decimal | int | float | str | None = None,
        force: bool = False,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> OpportunityT:
        """Closed won (from ``contract_sent``; from ``proposing`` with ``force=True``).

        The contact becomes a client.
        """
        return _deals.win(  # type: ignore[return-value]
            self.repository,
            self._id(opportunity),
            amount=amount,
            force=force,
            now=self._now(at),
            actor=actor,
            reason=reason,
        )

    @clock_scoped
    @retrying
    def lose(
        self,
        opportunity: DealSubject,
        *,
        reason: LostReason | str,
        note: str | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> OpportunityT:
        """Closed lost, for a :class:`LostReason`.

        ``unqualified`` makes the contact unqualified (a client stays a client);
        ``avoid`` puts the contact on the avoid list; otherwise it stays a prospect,
        followed up on the contact cadence.
        """
        return _deals.lose(  # type: ignore[return-value]
            self.repository,
            self._id(opportunity),
            reason=reason,
            note=note,
            now=self._now(at),
            actor=actor,
        )

    @clock_scoped
    @retrying
    def reschedule(
        self,
        opportunity: DealSubject,
        *,
        appointment_at: datetime,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> OpportunityT:
        """Move a set appointment to a new time."""
        return _deals.reschedule(  # type: ignore[return-value]
            self.repository,
            self._id(opportunity),
            appointment_at=appointment_at,
            now=self._now(at),
            actor=actor,
            reason=reason,
        )

    # --- touches ----------------------------------------------------------------------

    @clock_scoped
    def touch(
        self,
        subject: Lead | Contact | UUID | str,
        channel: Channel | str,
        outcome: Outcome | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        note: str | None = None,
        reason: str | None = None,
    ) -> Touch:
        """Log one follow-up on a lead or contact and return it.

        Refused with :class:`PolicyError` (and nothing stored) where the channel policy
        forbids the channel, or the person is on drip (past its cadence's touch limit:
        e-mail only, unless the touch records a reply). An ``opted_out`` outcome adds
        the channel to the person's ``opt_outs``.
        """
        now = self._now(at)
        return _follow_ups.touch(
            self.repository,
            self._id(subject),
            member(Channel, channel, "channel"),
            member(Outcome, outcome, "outcome"),
            cadence=self.cadence,
            now=now,
            actor=actor,
            note=note,
            reason=reason,
        )

    # --- reading ----------------------------------------------------------------------

    def get(self, id: UUID | str) -> LeadT | ContactT | OpportunityT:
        """The stored record with this id, or :class:`NotFoundError` (which names the
        record it was merged into, for a record merged away)."""
        return get_or_merged(self.repository, self._id(id))  # type: ignore[return-value]

    def find(
        self, *, email: str | None = None, phone: str | None = None
    ) -> LeadT | ContactT | None:
        """The person holding this e-mail or phone (normalised as :meth:`add` does:
        trimmed, case-folded e-mail, E.164 phone), or ``None``. Merged-away e-mails and
        phones count; a contact is found before the lead it was converted from. With
        both, the e-mail's holder wins."""
        return _people.find(  # type: ignore[return-value]
            self.repository, email=email, phone=phone, phone_region=self.phone_region
        )

    def get_lead(self, id: UUID | str) -> LeadT:
        """The stored lead with this id; :class:`NotFoundError` if there is none, or if
        the id is a contact's or an opportunity's (the message says which)."""
        return load(  # type: ignore[return-value]
            self.repository, self._id(id), Lead, erased=True
        )

    def get_contact(self, id: UUID | str) -> ContactT:
        """The stored contact with this id (see :meth:`get_lead`)."""
        return load(  # type: ignore[return-value]
            self.repository, self._id(id), Contact, erased=True
        )

    def get_opportunity(self, id: UUID | str) -> OpportunityT:
        """The stored opportunity with this id (see :meth:`get_lead`)."""
        return load(  # type: ignore[return-value]
            self.repository, self._id(id), Opportunity, erased=True
        )

    def leads(
        self,
        *,
        status: LeadStatus | str | None = None,
        tag: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        where: Mapping[str, Any] | None = None,
        after: Lead | UUID | str | None = None,
        limit: int | None = None,
    ) -> list[LeadT]:
        """Leads matching every given filter, ordered by ``(created_at, id)``.

        ``where`` filters by equality on any field, the application's own included
        (``where={"endpoints": 20}``; done in the database). Page with ``after`` (the
        last lead of the previous page, or its id) and ``limit``: each page costs the
        same, however far in.
        """
        return self.repository.leads(  # type: ignore[return-value]
            status=_member(LeadStatus, status, "status"),
            tag=_text(tag, "tag"),
            source=_text(source, "source"),
            owner=_text(owner, "owner"),
            created_since=_aware_or_none(created_since, "created_since"),
            created_until=_aware_or_none(created_until, "created_until"),
            where=_where(where, self._context["phone_region"]),
            after=self._cursor(after, "lead"),
            limit=_limit(limit),
        )

    def contacts(
        self,
        *,
        type: ContactType | str | None = None,
        tag: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        lead_id: Lead | UUID | str | None = None,
        where: Mapping[str, Any] | None = None,
        after: Contact | UUID | str | None = None,
        limit: int | None = None,
    ) -> list[ContactT]:
        """Contacts matching every given filter, ordered and paged as :meth:`leads`
        (``lead_id``: the contact converted from that lead)."""
        return self.repository.contacts(  # type: ignore[return-value]
            type=_member(ContactType, type, "type"),
            tag=_text(tag, "tag"),
            source=_text(source, "source"),
            owner=_text(owner, "owner"),
            lead_id=_id_or_none(lead_id, "lead_id"),
            where=_where(where, self._context["phone_region"]),
            after=self._cursor(after, "contact"),
            limit=_limit(limit),
        )

    def opportunities(
        self,
        *,
        stage: Stage | str | None = None,
        owner: str | None = None,
        setter: str | None = None,
        contact_id: UUID | str | None = None,
        lead_id: Lead | UUID | str | None = None,
        where: Mapping[str, Any] | None = None,
        after: Opportunity | UUID | str | None = None,
        limit: int | None = None,
    ) -> list[OpportunityT]:
        """Opportunities matching every given filter, ordered and paged as :meth:`leads`
        (``lead_id``: the deals of the lead they came from)."""
        return self.repository.opportunities(  # type: ignore[return-value]
            stage=_member(Stage, stage, "stage"),
            owner=_text(owner, "owner"),
            setter=_text(setter, "setter"),
            contact_id=_id_or_none(contact_id, "contact_id"),
            lead_id=_id_or_none(lead_id, "lead_id"),
            where=_where(where, self._context["phone_region"]),
            after=self._cursor(after, "opportunity"),
            limit=_limit(limit),
        )

    def count(self, kind: Literal["lead", "contact", "opportunity"], **filters: Any) -> int:
        """How many records of ``kind`` (``"lead"``, ``"contact"``, ``"opportunity"``)
        match ``filters``: the keyword filters of :meth:`leads`, :meth:`contacts` or
        :meth:`opportunities`."""
        if kind not in _KINDS:
            raise InvalidArgumentError(f"cannot count {kind!r}; count one of: {', '.join(_KINDS)}")
        checked = dict(filters)
        for name, enum in (("status", LeadStatus), ("type", ContactType), ("stage", Stage)):
            if checked.get(name) is not None:
                checked[name] = _member(enum, checked[name], name)
        for name in ("created_since", "created_until"):
            if checked.get(name) is not None:
                checked[name] = _aware_or_none(checked[name], name)
        for name in ("contact_id", "lead_id"):
            if checked.get(name) is not None:
                checked[name] = _filter_id(checked[name], name)
        for name in ("tag", "source", "owner", "setter"):
            if name in checked:
                checked[name] = _text(checked[name], name)
        if "where" in checked:
            checked["where"] = _where(checked["where"], self._context["phone_region"])
        return self.repository.count(kind, **checked)

    def _cursor(
        self, after: Lead | Contact | Opportunity | UUID | str | None, kind: SubjectKind
    ) -> Cursor | None:
        if after is None:
            return None
        record: object = after
        if not isinstance(after, (Lead, Contact, Opportunity)):
            id = _filter_id(after, "after")
            for _ in range(LOOKS):  # an unmerge between the two reads: read again
                record = self.repository.get_many([id]).get(id)
                if record is not None:
                    break
                # Merged away since the page was read (a web client carries only the
                # id): its place is where it was, as its merge log keeps it.
                record = next(
                    (log.other for log in self.repository.merges_of([id]) if log.other.id == id),
                    None,
                )
                if record is not None:
                    break
            if record is None:
                raise InvalidArgumentError(
                    f"after={id}: no such record (never stored, or its merge undone); "
                    "pass the last record of the previous page itself, which works even "
                    "once it is gone"
                )
        assert isinstance(record, (Lead, Contact, Opportunity))
        if record.kind != kind:
            # Its place among the other kind's records would be a silent empty page.
            raise InvalidArgumentError(
                f"after={record.id} is {_ONE[record.kind]}, not {_ONE[kind]}: page the "
                f"{_PLURAL[kind]} with the last {kind} of the previous page"
            )
        return (record.created_at, record.id)

    def history(self, subject: Subject) -> list[Event]:
        """The subject's events, oldest first."""
        return self.repository.history(self._id(subject))

    @clock_scoped
    def erase(
        self,
        subject: Lead | Contact | UUID | str,
        *,
        suppress: bool = True,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Erasure:
        """Erase a person's personal data now, in one transaction (a right-to-erasure
        request): the lead, the contact converted from it (given either, both) and
        everything recorded about them lose names, e-mail, phone, company, title, city,
        postal code and notes; what reports count stays, so every report reads the
        same. Open deals are lost (reason ``avoid``, or ``other`` with
        ``suppress=False``). With ``suppress=True`` the person's e-mail and phone stay
        on the suppression list as keyed hashes, so adding, capturing or importing them
        again raises :class:`AvoidListedError`; ``suppress=False`` keeps nothing. Call
        ``repository.compact()`` afterwards to clear the freed bytes from SQLite's
        files. Refused with :class:`PolicyError` for a person already erased."""
        return _privacy.erase(
            self.repository,
            self._id(subject),
            suppress=suppress,
            suppressor=self._suppressor,
            now=self._now(at),
            actor=actor,
            reason=reason,
            phone_region=self.phone_region,
        )

    def export_person(self, subject: Lead | Contact | UUID | str) -> dict[str, Any]:
        """Everything stored about a person (records, deals, touches, events, merge
        snapshots) as JSON-ready data (``json.dumps`` takes it as it is): the answer to
        an access or portability request."""
        return _privacy.export_person(self.repository, self._id(subject))

    def transaction(self) -> AbstractContextManager[None]:
        """``with funnel.transaction(): ...``: every change the block makes (in this
        thread) is kept if it ends normally, none if it raises. Nested, a savepoint.
        Subscribers hear of the changes once the outermost transaction commits."""
        return self.repository.transaction()

    def events(self, after: int = 0, limit: int | None = 1000) -> list[Event]:
        """The store's events with ``position > after``, in commit order, at most
        ``limit``: a feed. Keep the last ``position`` you handled and ask again with it;
        no event is ever skipped, however concurrent transactions interleave."""
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidArgumentError(
                f"after={after!r}: give the position of the last event you handled, a "
                "whole number (0 for the start of the feed); read a query string's with int()"
            )
        return self.repository.events(after=after, limit=_limit(limit))

    def last_position(self) -> int:
        """The position of the last event committed (0 for none): a consumer that
        starts from now keeps it and asks :meth:`events` with ``after=`` it."""
        return self.repository.last_position()

    def subscribe(self, callback: Callable[[list[Event]], None]) -> Callable[[], None]:
        """Call ``callback(events)`` after each commit made through this funnel's
        repository object, with that commit's events (never for a change that failed).
        Returns a function that removes this registration only.

        Another repository object on the same database and other processes are not
        heard: read :meth:`events`. Delivery is at most once (nothing if the process
        dies before the call, nothing again if the callback raises), so a relay that
        must not lose events reads :meth:`events` and keeps its position. A callback
        that raises an ``Exception`` is logged and undoes nothing; ``KeyboardInterrupt``
        and ``SystemExit`` propagate, the commit standing and later subscribers untold.
        Each subscriber hears one thread's commits in position order, those made by
        subscribers included; different threads' deliveries may interleave. ``None``
        and ``async`` functions raise :class:`InvalidArgumentError`."""
        return self.repository.subscribe(callback)

    def touches(self, subject: Subject) -> list[Touch]:
        """The touches logged on a lead or contact, oldest first."""
        return self.repository.touches(self._id(subject))

    # --- duplicates -------------------------------------------------------------------

    def similar(
        self, subject: Lead | Contact | UUID | str, *, limit: int = 20
    ) -> list[LeadT | ContactT]:
        """Likely duplicates that ``add`` could not refuse, best first, among leads
        and contacts both (merge takes two of one kind).

        Candidates share the company's e-mail domain (free-mail domains excepted), the
        company, or a close person name; each clue adds to the score.
        """
        return _merging.similar(  # type: ignore[return-value]
            self.repository,
            self._id(subject),
            free_mail_domains=self.free_mail_domains,
            limit=_limit(limit),
        )

    @overload
    def merge(
        self,
        keep: _P,
        other: Lead | Contact | UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> _P: ...

    @overload
    def merge(
        self,
        keep: UUID | str,
        other: Lead | Contact | UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> LeadT | ContactT: ...

    @clock_scoped
    @retrying
    def merge(
        self,
        keep: Lead | Contact | UUID | str,
        other: Lead | Contact | UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Merge a duplicate into ``keep`` and return the merged ``keep``.

        ``keep``'s empty fields are filled from ``other``, tags, needs and opt-outs are
        united, and ``other``'s touches, deals and history move to ``keep``. ``other``
        is removed; a merge log lets :meth:`unmerge` undo it exactly.
        """
        return _merging.merge(
            self.repository,
            self._id(keep),
            self._id(other),
            now=self._now(at),
            actor=actor,
            reason=reason,
        )

    @overload
    def unmerge(
        self,
        keep: _P,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> _P: ...

    @overload
    def unmerge(
        self,
        keep: UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> LeadT | ContactT: ...

    @clock_scoped
    @retrying
    def unmerge(
        self,
        keep: Lead | Contact | UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Undo the last merge into ``keep`` and return ``keep`` as it was before it.

        The merged-away record comes back exactly as it was (``funnel.get(other_id)``),
        with its touches, deals, history and keys (no longer ``keep``'s person's, should
        ``keep`` be avoided or erased later).

        Refused with :class:`InvalidArgumentError` once ``keep`` has changed since the
        merge (undoing it would silently drop that change); :class:`NotFoundError` when
        ``keep`` has no merge to undo.
        """
        return _merging.unmerge(
            self.repository,
            self._id(keep),
            suppressor=self._suppressor,
            now=self._now(at),
            actor=actor,
            reason=reason,
        )

    # --- cadence and reports ----------------------------------------------------------

    def due(
        self, at: datetime | None = None, *, owner: str | None = None, limit: int | None = None
    ) -> list[FollowUp]:
        """The follow-ups due at ``at`` (default now), most overdue first: of the people
        ``owner`` owns, when given (filtered in storage), the first ``limit``."""
        return self._counted_due(at, owner=owner, limit=limit)[0]

    @clock_scoped
    def _counted_due(
        self, at: datetime | None = None, *, owner: str | None = None, limit: int | None = None
    ) -> tuple[list[FollowUp], int, int]:
        """:meth:`due`, with how many follow-ups are due in all and how many of them
        are overdue, ``limit`` or not (what ``leadfunnel due``'s table says under its
        rows); only ``limit`` of them are held at a time."""
        from ._cadence import counted_follow_ups

        _text(owner, "owner")
        return counted_follow_ups(
            self.repository,
            self.cadence,
            self._now(at),
            self.router,
            owner=owner,
            limit=_limit(limit),
        )

    def report(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: GroupBy | None = None,
    ) -> FunnelReport:
        """Stage-to-stage conversion counted from history, ``since <= at < until``."""
        from ._reports import build_report

        return build_report(self.repository, since=since, until=until, by=by, now=self.clock.now())

    def compare(
        self,
        since: datetime,
        until: datetime,
        *,
        previous: tuple[datetime, datetime] | None = None,
    ) -> FunnelComparison:
        """The report of ``since <= at < until`` against that of the period before, as
        a :class:`FunnelComparison` (the change per step, in conversion and in won
        revenue; table, JSON, CSV and SVG). ``previous`` is ``(since, until)`` of the
        period to compare with; by default the same calendar months before when both
        bounds are midnight on the first of a month, else the same length before."""
        from ._comparison import compare_periods

        return compare_periods(
            self.repository, since, until, previous=previous, now=self.clock.now()
        )

    @clock_scoped
    def rep_list(
        self,
        name: RepListName | str,
        *,
        at: datetime | None = None,
        source: str | None = None,
        owner: str | None = None,
        min_age_days: int | None = None,
        max_age_days: int | None = None,
        limit: int | None = None,
    ) -> RepList:
        """A list a rep can call from, newest first: ``"not_sat"`` (appointments set but
        not sat), ``"not_bought"`` (sat but didn't buy) or ``"never_booked"``
        (qualified, sweet-spot leads never booked). See :class:`RepListName`.

        ``at`` is the moment the list is for (default now): an appointment counts as
        not sat once its time has passed, and ages are whole days to ``at``. Filter by
        ``source`` (the lead's, or the deal's contact's) and ``owner``, by age
        (``min_age_days <= age_days <= max_age_days``), and cap with ``limit``. Lost
        deals marked ``avoid`` or ``unqualified`` never appear. Group the result with
        ``.by_source()`` and ``.by_age()``.
        """
        from ._rep_lists import build_rep_list

        return build_rep_list(
            self.repository,
            name,
            at=self._now(at),
            source=_text(source, "source"),
            owner=_text(owner, "owner"),
            min_age_days=min_age_days,
            max_age_days=max_age_days,
            limit=_limit(limit),
        )


_KINDS = ("lead", "contact", "opportunity")
_E = TypeVar("_E", LeadStatus, ContactType, Stage)


def _member(enum: type[_E], value: _E | str | None, name: str) -> _E | None:
    """``value`` as a member of ``enum`` (``None`` stays ``None``)."""
    return None if value is None else member(enum, value, name)


_ONE = {"lead": "a lead", "contact": "a contact", "opportunity": "an opportunity"}
_PLURAL = {"lead": "leads", "contact": "contacts", "opportunity": "opportunities"}


def _aware_or_none(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else require_aware(value, name)


def _text(value: Any, name: str) -> str | None:
    """A text filter's value (``owner``, ``source``, ``setter``, ``tag``): a ``str``, or
    None for no filter; anything else an :class:`InvalidArgumentError` (a list given
    for one value would reach the store as a parameter it cannot bind)."""
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentError(
            f"{name}={value!r}: give one {name} as stored on the records (a str), or None "
            "for no filter"
        )
    return value


def _id_or_none(value: Subject | None, name: str) -> UUID | None:
    return None if value is None else _filter_id(value, name)


def _filter_id(value: Subject, name: str) -> UUID:
    """A filter's or cursor's record id: a record, a UUID or its text, as
    :func:`subject_id` takes them (an :class:`InvalidArgumentError` for anything else,
    not a record that is not found)."""
    try:
        return subject_id(value)
    except NotFoundError:
        mistyped = mistyped_id(str(value))
        if mistyped is not None:
            raise InvalidArgumentError(f"{name}={mistyped}") from None
        if looks_personal(str(value)):  # not repeated: errors end up in logs
            raise InvalidArgumentError(
                f"{name}= is given an e-mail or a phone, by the look of it, not a record id: "
                "find the person with funnel.find(email=..., phone=...) and pass that record"
            ) from None
        raise InvalidArgumentError(
            f"{name}={value!r} is not a record id: give a UUID (or its text), or a record"
        ) from None


def _where(
    where: Mapping[str, Any] | None, region: str = DEFAULT_PHONE_REGION
) -> Mapping[str, Any] | None:
    """``where`` checked to be a mapping of field names to values; a phone written
    without its country code read in the funnel's ``region``, as a stored one was (the
    store validates the rest as each field stores it)."""
    if where is None:
        return None
    if not isinstance(where, Mapping) or not all(isinstance(k, str) for k in where):
        raise InvalidArgumentError(
            f"where={where!r}: give a mapping of field names to values, such as "
            'where={"endpoints": 20}'
        )
    phone = where.get("phone")
    if isinstance(phone, str) and phone.strip() and not phone.lstrip().startswith("+"):
        try:
            e164 = normalise_phone(phone.strip(), region)
        except ValueError as exc:
            raise InvalidArgumentError(f"where={{'phone': {phone!r}}}: {exc}") from None
        where = {**where, "phone": e164}
    return where


def _free_mail_domains(domains: Iterable[str]) -> frozenset[str]:
    """The free-mail domains, lower-cased; one text would be read as its letters."""
    if not isinstance(domains, str):
        domains = list(domains)  # a generator is read once: by the check, then kept
    if isinstance(domains, str) or not all(isinstance(d, str) and d.strip() for d in domains):
        raise ConfigError(
            f"free_mail_domains={domains!r}: give a list of domain names, such as "
            '["gmail.com", "outlook.com"] (add to leadfunnel.FREE_MAIL_DOMAINS to extend it)'
        )
    return frozenset(d.strip().lower() for d in domains)


def _limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidArgumentError(f"limit={limit!r}: give a whole number, 0 or more, or None")
    return limit


#: What to pass instead of a mapping or a file's path, per argument of ``Funnel``.
_BUILT_FROM = {
    "engine": ("QualificationEngine", "rules"),
    "cadence": ("CadencePolicy", "cadence"),
    "router": ("RoutingRules", "routing"),
}


def _check_collaborators(
    repository: object, engine: object, cadence: object, router: object, clock: object
) -> None:
    """A :class:`ConfigError` for an argument of ``Funnel`` that is not what the funnel
    uses (a URL for the repository, a dict for the engine, a class for an instance, a
    datetime for a clock): said when the funnel is made, naming the argument, what was
    given (its type: a URL may hold a password) and what to pass, instead of an
    ``AttributeError`` on the first lead qualified, routed or followed up. Anything
    with the methods the funnel calls will do for an engine (``evaluate``) and a router
    (``assign`` and ``backup_for``), as DESIGN allows an integrator's own."""
    if repository is not None and not isinstance(repository, Repository):
        if isinstance(repository, (str, PathLike)):
            todo = (
                "a URL or a path is not a repository: pass SqlRepository(that URL), or "
                "leave repository out to keep everything in memory"
            )
        elif isinstance(repository, type) and issubclass(repository, Repository):
            todo = f"pass an instance, {repository.__name__}(...), not the class"
        else:
            todo = (
                "pass InMemoryRepository(), SqlRepository(url) or your own adapter (a "
                "subclass of leadfunnel.Repository)"
            )
        raise ConfigError(f"Funnel(repository=...) was given {_given(repository)}: {todo}")
    _check_built(
        "engine",
        engine,
        ("evaluate",),
        "an object whose evaluate(lead) returns a QualificationResult",
    )
    if cadence is not None and not isinstance(cadence, CadencePolicy):
        _check_built("cadence", cadence, (), "")
        raise ConfigError(
            f"Funnel(cadence=...) was given {_given(cadence)}: pass a CadencePolicy "
            "(CadencePolicy(lead_touches=2, ...), CadencePolicy.from_dict() or "
            ".from_toml()), or leave cadence out for the default policy"
        )
    _check_built(
        "router",
        router,
        ("assign", "backup_for"),
        "an object with assign(lead) and backup_for(owner, lead)",
    )
    if isinstance(clock, datetime):
        raise ConfigError(
            f"Funnel(clock=...) was given a datetime ({clock.isoformat()}), not a clock: a "
            "clock is an object whose now() must return a timezone-aware datetime; pass "
            "leadfunnel.testing.ManualClock(that datetime) to start there, or leave clock "
            "out for the system's UTC clock"
        )
    if isinstance(clock, type):
        raise ConfigError(
            f"Funnel(clock=...) was given the class {clock.__name__}, not a clock: pass an "
            f"instance ({clock.__name__}(...)), whose now() returns a timezone-aware datetime"
        )


def _check_built(name: str, value: object, methods: tuple[str, ...], duck: str) -> None:
    """A :class:`ConfigError` for ``Funnel(name=value)`` where ``value`` is the data
    to build the collaborator from (a mapping, a file's path), a class, or (given
    ``methods``) an object lacking one of them."""
    if value is None:
        return
    built, section = _BUILT_FROM[name]
    if isinstance(value, Mapping):
        todo = f"pass {built}.from_dict({{...}}) built from it, not the {type(value).__name__}"
    elif isinstance(value, (str, PathLike)):
        todo = (
            f"pass {built}.from_toml(path) built from the file, not its path (a {section} "
            f"file), or {built}.from_dict({{...}})"
        )
    elif isinstance(value, type):
        todo = f"pass an instance ({value.__name__}(...)), not the class"
    else:
        lacking = [m for m in methods if not callable(getattr(value, m, None))]
        if not lacking:
            return
        named = " or ".join(f"{m}()" for m in lacking)
        todo = f"pass a {built} or {duck} (this one has no {named} method)"
    raise ConfigError(f"Funnel({name}=...) was given {_given(value)}: {todo}")


def _given(value: object) -> str:
    """What an argument was given, by its type only (a URL may hold a password)."""
    if isinstance(value, type):
        return f"the class {value.__name__}"
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _check_clock(clock: Clock) -> None:
    """A clock tells aware time (DESIGN 10): a naive one stored naive datetimes in
    memory and failed deep inside the SQL adapter; say so when the funnel is made."""
    now = getattr(clock, "now", None)
    told = now() if callable(now) else None
    if not isinstance(told, datetime) or told.utcoffset() is None:
        raise ConfigError(
            f"clock {clock!r}: its now() must return a timezone-aware datetime (as "
            f"datetime.now(UTC) does), not {told!r}; pass a leadfunnel.testing.ManualClock "
            "or an object whose now() returns aware time"
        )
