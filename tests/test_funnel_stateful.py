"""Random sequences of triggers driven through the Funnel, checked after every step.

A hypothesis ``RuleBasedStateMachine`` adds people, moves them with every trigger the
facade has (legal or not), touches, edits, merges and unmerges them, on each adapter of
the ``repository`` fixture, and checks:

* every move the contract allows is accepted, every other one refused;
* a refused call changes nothing (records, histories, touches);
* an accepted call adds exactly one event per record it changes (at most one on a
  record it does not change), and bumps each changed record's version by one;
* every record is in a state its lifecycle defines, and its last event says so;
* ``merge`` followed by ``unmerge`` restores every record exactly (but version and
  ``updated_at``) and every touch.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pydantic
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from conftest import REPOSITORY_KINDS, T0, make_repository, person, release_repository
from leadfunnel import (
    Channel,
    Contact,
    ContactType,
    Funnel,
    Lead,
    LeadFunnelError,
    LeadStatus,
    LostReason,
    Opportunity,
    Outcome,
    Stage,
)
from leadfunnel._lifecycle import LEAD, OPPORTUNITY
from leadfunnel._models import holds_keys, identity_keys, state_of
from leadfunnel.testing import ManualClock
from test_lifecycle import LEAD_CONTRACT, LEAD_FORCED, STAGE_CONTRACT, STAGE_FORCED

IGNORED = {"version", "updated_at"}
REFUSALS = (LeadFunnelError, pydantic.ValidationError, ValueError)


def contract_allows(
    table: dict[tuple[str, str], str],
    forced: dict[tuple[str, str], str],
    state: str,
    trigger: str,
    force: bool,
) -> str | None:
    """The state the contract sends ``state`` to by ``trigger``, or None if refused."""
    if (state, trigger) in table:
        return table[(state, trigger)]
    if force and (state, trigger) in forced:
        return forced[(state, trigger)]
    return None


class FunnelMachine(RuleBasedStateMachine):
    repository_kind = "memory"
    workdir = Path(".")

    leads = Bundle("leads")
    contacts = Bundle("contacts")
    deals = Bundle("deals")

    def __init__(self) -> None:
        super().__init__()
        directory = self.workdir / uuid.uuid4().hex
        directory.mkdir()
        self.repository = make_repository(self.repository_kind, directory)
        self.clock = ManualClock(T0)
        self.funnel = Funnel(self.repository, clock=self.clock)
        self.emails: list[str] = []
        # E-mails an avoided person dropped by an edit: suppressed, never to come back.
        self.suppressed: set[str] = set()
        # E-mails a person dropped before it was avoided, and who dropped them: they are
        # suppressed once that person is avoided (DESIGN 12: keys it ever held).
        self.former: dict[str, set[UUID]] = {}
        self.numbers = itertools.count(1)
        self.run = uuid.uuid4().hex[:8]  # a shared database may keep earlier runs' people

    def person(self, **fields: Any) -> dict[str, Any]:
        n = next(self.numbers)
        return person(n, **{"email": f"pat{n}.{self.run}@acme-it{n}.example.com", **fields})

    def teardown(self) -> None:
        release_repository(self.repository)

    # --- observing ----------------------------------------------------------------------

    def records(self) -> dict[UUID, Any]:
        f = self.funnel
        return {r.id: r for r in (*f.leads(), *f.contacts(), *f.opportunities())}

    def snapshot(self) -> dict[str, Any]:
        records = self.records()
        return {
            "records": records,
            "history": {i: self.funnel.history(i) for i in records},
            "touches": {
                i: self.funnel.touches(i)
                for i, r in records.items()
                if not isinstance(r, Opportunity)
            },
        }

    def attempt(self, call: Callable[[], Any]) -> Any:
        """Run ``call``; check the event and no-change rules; None if it was refused."""
        before = self.snapshot()
        try:
            result = call()
        except REFUSALS:
            assert self.snapshot() == before, "a refused call changed something"
            return None
        self.check_events(before, self.snapshot())
        return result

    @staticmethod
    def check_events(before: dict[str, Any], after: dict[str, Any]) -> None:
        seen = {e.id for events in before["history"].values() for e in events}
        for record_id, record in after["records"].items():
            new = [e for e in after["history"][record_id] if e.id not in seen]
            old = before["records"].get(record_id)
            if old is None or old.version != record.version:
                assert len(new) == 1, f"{record.kind} changed with {len(new)} events: {new}"
                if old is not None:
                    assert record.version == old.version + 1
            else:
                assert old == record
                assert len(new) <= 1, f"unchanged {record.kind} got {len(new)} events"
            for event in new:
                assert event.subject_id == record_id
                assert event.subject == record.kind

    # --- people ---------------------------------------------------------------------

    @initialize(target=leads)
    def first_lead(self) -> Any:
        return self._add_lead("raw", None)

    def holders(self, email: str) -> dict[UUID, Lead | Contact]:
        """The people who hold ``email`` as an identity key (their own or a merged one)."""
        key = f"email:{email.lower()}"
        return {
            r.id: r
            for r in self.records().values()
            if isinstance(r, (Lead, Contact)) and holds_keys(r) and key in identity_keys(r)
        }

    def avoided_before(self, email: str) -> bool:
        """Whether a person who dropped ``email`` has been avoided since (or is gone,
        merged into another whose state this model does not follow)."""
        records = self.records()
        for holder in self.former.get(email.lower(), ()):
            record = records.get(holder)
            if record is None:
                return True  # merged away: its keep may be avoided
            linked = [record]
            for other in (getattr(record, "contact_id", None), getattr(record, "lead_id", None)):
                if other is not None and other in records:
                    linked.append(records[other])
            if any(state_of(r) == "avoid" for r in linked):
                return True
        return False

    def refusable(self, email: str | None) -> bool:
        """Whether adding or capturing ``email`` may be refused as avoid-listed."""
        return email is not None and (
            email.lower() in self.suppressed or self.avoided_before(email)
        )

    def _add_lead(self, status: str, email: str | None) -> Any:
        fields = self.person(status=status, **({"email": email} if email else {}))
        holders = self.holders(email) if email else {}
        lead = self.attempt(lambda: self.funnel.add(Lead(**fields)))
        if lead is None:
            assert holders or self.refusable(email), "a new person was refused"
            return multiple()
        assert (email or "").lower() not in self.suppressed, "a suppressed person came back"
        assert not holders, "a duplicate was added"
        assert lead.status == status
        self.emails.append(lead.email)
        return lead.id

    @rule(
        target=leads,
        status=st.sampled_from(["suspect", "farm_list", "raw", "avoid"]),
        clash=st.booleans(),
        data=st.data(),
    )
    def add_lead(self, status: str, clash: bool, data: st.DataObject) -> Any:
        email = data.draw(st.sampled_from(self.emails)) if clash and self.emails else None
        return self._add_lead(status, email)

    @rule(target=leads, status=st.sampled_from(["suspect", "raw", "avoid"]), phone=st.booleans())
    def add_badge(self, status: str, phone: bool) -> Any:
        """A badge scan: no e-mail (and often no phone either): never a duplicate."""
        n = next(self.numbers)
        fields = self.person(status=status, email=None, phone=f"+1512555{n % 10000:04d}")
        if not phone:
            fields["phone"] = None
        lead = self.attempt(lambda: self.funnel.add(Lead(**fields)))
        if lead is None:
            assert phone, "a person without e-mail or phone was refused"
            return multiple()
        return lead.id

    @rule(subject=st.one_of(leads, contacts))
    def change_address(self, subject: UUID) -> None:
        """A new e-mail address: an avoided person's old one stays suppressed."""
        stored = self.records().get(subject)
        if not isinstance(stored, (Lead, Contact)) or not holds_keys(stored):
            return
        fresh = self.person()["email"]
        result = self.attempt(
            lambda: self.funnel.update(stored.model_copy(update={"email": fresh}))
        )
        assert result is not None
        self.emails.append(fresh)
        if stored.email is not None and state_of(stored) == "avoid":
            self.suppressed.add(stored.email.lower())
        elif stored.email is not None:
            self.former.setdefault(stored.email.lower(), set()).add(stored.id)

    @rule(target=contacts, type_=st.sampled_from(["prospect", "client", "partner"]))
    def add_contact(self, type_: str) -> Any:
        contact = self.attempt(lambda: self.funnel.add(Contact(**self.person(), type=type_)))
        assert contact is not None
        return contact.id

    @rule(target=leads, existing=st.booleans(), data=st.data())
    def capture(self, existing: bool, data: st.DataObject) -> Any:
        if existing and self.emails:
            email = data.draw(st.sampled_from(self.emails))
        else:
            email = self.person()["email"]
        holders = self.holders(email)
        carrier = self.attempt(lambda: self.funnel.capture(Lead(email=email, city="Austin")))
        if carrier is None:
            # only an avoid-listed person is refused
            assert self.refusable(email) or any(
                r.kind != "opportunity" and state_of(r) == "avoid" for r in holders.values()
            )
            return multiple()
        assert email.lower() not in self.suppressed, "a suppressed person came back"
        if carrier.id not in holders:
            assert isinstance(carrier, Lead)
            assert carrier.status == LeadStatus.RAW
            self.emails.append(email)
        return carrier.id if isinstance(carrier, Lead) else multiple()

    # --- lead triggers --------------------------------------------------------------

    @rule(
        lead=leads,
        trigger=st.sampled_from(["farm", "respond", "disqualify", "avoid", "qualify"]),
    )
    def lead_trigger(self, lead: UUID, trigger: str) -> None:
        stored = self.records().get(lead)
        method = getattr(self.funnel, trigger)
        if trigger == "qualify":
            result = self.attempt(lambda: method(lead, force=True))
        else:
            result = self.attempt(lambda: method(lead))
        if stored is None:
            assert result is None  # merged away
            return
        state = stored.status.value
        expected = contract_allows(LEAD_CONTRACT, LEAD_FORCED, state, trigger, False)
        if trigger == "avoid" and state == "avoid":
            assert result == stored  # a no-op
            return
        if expected is None:
            assert result is None, f"{trigger} accepted from {state}"
        else:
            assert result is not None, f"{trigger} refused from {state}"
            assert self.funnel.get_lead(lead).status == expected

    @rule(target=deals, subject=st.one_of(leads, contacts), force=st.booleans())
    def set_appointment(self, subject: UUID, force: bool) -> Any:
        stored = self.records().get(subject)
        opp = self.attempt(lambda: self.funnel.set_appointment(subject, force=force))
        if isinstance(stored, Lead):
            state = stored.status.value
            expected = contract_allows(LEAD_CONTRACT, LEAD_FORCED, state, "convert", force)
            assert (opp is not None) == (expected is not None and stored.contact_id is None)
        elif isinstance(stored, Contact):
            bookable = stored.type in ("prospect", "client") or (
                force and stored.type == "unqualified"
            )
            assert (opp is not None) == bookable
        if opp is None:
            return multiple()
        assert opp.stage == Stage.APPOINTMENT_SET
        contact = self.funnel.get(opp.contact_id)
        assert isinstance(contact, Contact)
        assert contact.type in (ContactType.PROSPECT, ContactType.CLIENT, ContactType.UNQUALIFIED)
        return opp.id

    @rule(target=contacts, deal=deals)
    def contact_of(self, deal: UUID) -> Any:
        opp = self.funnel.get(deal)
        assert isinstance(opp, Opportunity)
        return opp.contact_id

    # --- deal triggers --------------------------------------------------------------

    @rule(
        deal=deals,
        trigger=st.sampled_from(["sit", "propose", "send_contract", "win", "reschedule"]),
        force=st.booleans(),
    )
    def deal_trigger(self, deal: UUID, trigger: str, force: bool) -> None:
        stored = self.funnel.get(deal)
        assert isinstance(stored, Opportunity)
        kwargs: dict[str, Any] = {}
        if trigger == "win":
            kwargs["force"] = force
        if trigger == "reschedule":
            kwargs["appointment_at"] = self.clock.now()
        contact_before = self.funnel.get_contact(stored.contact_id)
        result = self.attempt(lambda: getattr(self.funnel, trigger)(deal, **kwargs))
        state = stored.stage.value
        expected = contract_allows(
            STAGE_CONTRACT, STAGE_FORCED, state, trigger, trigger == "win" and force
        )
        assert (result is not None) == (expected is not None), (trigger, state, force)
        if result is not None:
            assert result.stage == expected
            contact = self.funnel.get_contact(stored.contact_id)
            if trigger == "win" and contact_before.type in ("prospect", "client"):
                assert contact.type == ContactType.CLIENT

    @rule(deal=deals, reason=st.sampled_from(list(LostReason)))
    def lose(self, deal: UUID, reason: LostReason) -> None:
        stored = self.funnel.get(deal)
        assert isinstance(stored, Opportunity)
        contact_before = self.funnel.get(stored.contact_id)
        assert isinstance(contact_before, Contact)
        result = self.attempt(lambda: self.funnel.lose(deal, reason=reason))
        assert (result is not None) == stored.is_open
        if result is None:
            return
        contact = self.funnel.get(stored.contact_id)
        assert isinstance(contact, Contact)
        before = contact_before.type
        if reason == LostReason.AVOID:
            assert contact.type == ContactType.AVOID
        elif reason == LostReason.UNQUALIFIED and before == ContactType.PROSPECT:
            assert contact.type == ContactType.UNQUALIFIED
        else:
            assert contact.type == before

    # --- touches and edits --------------------------------------------------------------

    @rule(
        subject=st.one_of(leads, contacts),
        channel=st.sampled_from(list(Channel)),
        outcome=st.sampled_from(list(Outcome)),
    )
    def touch(self, subject: UUID, channel: Channel, outcome: Outcome) -> None:
        self.attempt(lambda: self.funnel.touch(subject, channel, outcome))

    @rule(
        subject=st.one_of(leads, contacts, deals),
        edit=st.sampled_from(["owner", "state", "stale"]),
    )
    def update(self, subject: UUID, edit: str) -> None:
        stored = self.records().get(subject)
        if stored is None:
            return
        if edit == "owner":
            copy = stored.model_copy(update={"owner": f"rep-{next(self.numbers)}"})
        elif edit == "state":
            field = {"lead": "status", "contact": "type", "opportunity": "stage"}[stored.kind]
            other = {"lead": LeadStatus.SUSPECT, "contact": ContactType.OTHER}.get(
                stored.kind, Stage.LOST
            )
            if state_of(stored) == other:
                return
            copy = stored.model_copy(update={field: other})
        else:
            copy = stored.model_copy(update={"version": stored.version - 1, "owner": "late"})
        result = self.attempt(lambda: self.funnel.update(copy))
        assert (result is not None) == (edit == "owner")

    @rule()
    def later(self) -> None:
        self.clock.advance(hours=1)

    # --- merges -----------------------------------------------------------------------

    def _merge_pair(self, a: UUID, b: UUID) -> tuple[Any, Any] | None:
        records = self.records()
        keep, other = records.get(a), records.get(b)
        if keep is None or other is None:
            return None
        return keep, other

    @rule(a=st.one_of(leads, contacts), b=st.one_of(leads, contacts))
    def merge_then_unmerge(self, a: UUID, b: UUID) -> None:
        if self._merge_pair(a, b) is None:
            return
        before = self.snapshot()
        merged = self.attempt(lambda: self.funnel.merge(a, b))
        if merged is None:
            return
        restored = self.attempt(lambda: self.funnel.unmerge(a))
        if state_of(merged) == "avoid":
            # An avoided person's merge stays: its merged-away keys stay refused.
            assert restored is None
            return
        assert restored is not None
        after = self.snapshot()
        assert set(after["records"]) == set(before["records"])
        for record_id, record in before["records"].items():
            assert after["records"][record_id].model_dump(exclude=IGNORED) == record.model_dump(
                exclude=IGNORED
            )
        assert after["touches"] == before["touches"]
        for record_id, events in before["history"].items():
            assert after["history"][record_id][: len(events)] == events

    @rule(a=st.one_of(leads, contacts), b=st.one_of(leads, contacts))
    def merge(self, a: UUID, b: UUID) -> None:
        pair = self._merge_pair(a, b)
        merged = self.attempt(lambda: self.funnel.merge(a, b))
        if merged is not None:
            assert pair is not None
            assert pair[0].kind == pair[1].kind

    @rule(keep=st.one_of(leads, contacts))
    def unmerge(self, keep: UUID) -> None:
        self.attempt(lambda: self.funnel.unmerge(keep))

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def states_are_defined_and_history_agrees(self) -> None:
        for record in self.records().values():
            state = state_of(record)
            if isinstance(record, Lead):
                assert state in LEAD.states
                assert (record.status == LeadStatus.CONVERTED) <= (record.contact_id is not None)
                if record.contact_id is not None:
                    # the contact it became (or the one that was merged into) exists
                    assert isinstance(self.funnel.get(record.contact_id), Contact)
            elif isinstance(record, Opportunity):
                assert state in OPPORTUNITY.states
                assert (record.closed_at is None) == record.is_open
                contact = self.funnel.get(record.contact_id)
                assert isinstance(contact, Contact)
                # nobody goes on selling to an avoided contact
                assert not (record.is_open and contact.type == ContactType.AVOID)
            else:
                assert state in {t.value for t in ContactType}
            history = self.funnel.history(record.id)
            assert history, f"{record.kind} without history"
            assert history[-1].dest == state
            for event in history:
                if event.subject == "lead" and event.name in LEAD.triggers:
                    assert event.source is not None
                    assert LEAD.move(event.source, event.name, force=True) == event.dest
                if event.subject == "opportunity" and event.name in OPPORTUNITY.triggers:
                    assert event.source is not None
                    assert OPPORTUNITY.move(event.source, event.name, force=True) == event.dest


@pytest.mark.slow  # scheduled first: see conftest
@pytest.mark.parametrize("kind", REPOSITORY_KINDS)
def test_random_trigger_sequences(kind: str, tmp_path: Path) -> None:
    class Machine(FunnelMachine):
        repository_kind = kind
        workdir = tmp_path

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=int(
                os.environ.get(
                    "LEADFUNNEL_STATEFUL_EXAMPLES",
                    {"memory": 40, "sqlite": 15}.get(kind, 5),  # server databases: a few
                )
            ),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
