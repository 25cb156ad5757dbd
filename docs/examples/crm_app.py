"""A small web CRM on leadfunnel: FastAPI, a dozen endpoints, one funnel.

Run it with ``uvicorn crm_app:app`` (it keeps its data in ``crm.db`` and judges leads by
the rules in ``rules.toml`` when there is one), or build your own around
:func:`create_app`, which takes any funnel. ``tests/test_example_app.py`` drives it
through FastAPI's test client on memory, SQLite, PostgreSQL and MariaDB.

Every leadfunnel error becomes an HTTP answer with its message: a refused move is a
409, a record that does not exist a 404, a bad argument a 422, a channel the policy
forbids a 403. Nothing here knows about SQL: the funnel does the work.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import pydantic
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from leadfunnel import (
    ConcurrencyError,
    DuplicateError,
    Funnel,
    InvalidArgumentError,
    InvalidTransitionError,
    Lead,
    LeadFunnelError,
    NotFoundError,
    PolicyError,
    QualificationEngine,
    SqlRepository,
)

_STATUS = [  # the first that matches wins: AvoidListedError is a DuplicateError
    (NotFoundError, 404),
    (InvalidArgumentError, 422),
    (PolicyError, 403),
    (InvalidTransitionError, 409),
    (DuplicateError, 409),
    (ConcurrencyError, 409),
    (LeadFunnelError, 400),
]


class CaptureForm(pydantic.BaseModel):
    """What the web form posts (a lead's fields; the funnel validates them)."""

    model_config = pydantic.ConfigDict(extra="allow")


class TouchForm(pydantic.BaseModel):
    channel: str
    outcome: str
    note: str | None = None


class QualifyForm(pydantic.BaseModel):
    """Judge by the rules (the default), or qualify by hand (``force``, with a reason)."""

    force: bool = False
    reason: str | None = None


class AppointmentForm(pydantic.BaseModel):
    appointment_at: datetime | None = None
    owner: str | None = None
    setter: str | None = None
    force: bool = False  # book a raw lead (a referral who called) without qualifying it


class CloseForm(pydantic.BaseModel):
    amount: Decimal | None = None
    reason: str | None = None
    note: str | None = None


def create_app(funnel: Funnel) -> FastAPI:
    """The CRM's HTTP API over ``funnel``."""
    app = FastAPI(title="leadfunnel CRM")

    @app.exception_handler(LeadFunnelError)
    def refused(request: Request, error: LeadFunnelError) -> JSONResponse:
        status = next(code for kind, code in _STATUS if isinstance(error, kind))
        return JSONResponse({"error": type(error).__name__, "detail": str(error)}, status)

    @app.exception_handler(pydantic.ValidationError)
    def invalid(request: Request, error: pydantic.ValidationError) -> JSONResponse:
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        return JSONResponse({"error": "ValidationError", "detail": problems}, 422)

    @app.post("/leads", status_code=201)
    def capture(form: CaptureForm, response: Response) -> dict[str, Any]:
        # Validated in the funnel's phone region: "030 1234567" is Berlin for a German CRM.
        fields = Lead.model_validate(
            form.model_dump(), context={"phone_region": funnel.phone_region}
        )
        done = funnel.capture_result(fields)
        if not done.new:
            response.status_code = 200  # a known person answered again
        return {"kind": done.record.kind, "new": done.new, **done.record.model_dump(mode="json")}

    @app.get("/people")
    def find(email: str | None = None, phone: str | None = None) -> dict[str, Any]:
        found = funnel.find(email=email, phone=phone)
        if found is None:
            raise HTTPException(404, "nobody with that e-mail or phone")
        return {"kind": found.kind, **found.model_dump(mode="json")}

    @app.get("/leads")
    def leads(
        status: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        after: UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,  # a page, never the whole store
    ) -> dict[str, Any]:
        page = funnel.leads(status=status, source=source, owner=owner, after=after, limit=limit)
        total = funnel.count("lead", status=status, source=source, owner=owner)
        return {
            "items": [lead.model_dump(mode="json") for lead in page],
            "total": total,
            "next": str(page[-1].id) if len(page) == limit else None,
        }

    @app.get("/leads/{id}")
    def lead(id: UUID) -> dict[str, Any]:
        return funnel.get_lead(id).model_dump(mode="json")

    @app.post("/leads/{id}/qualify")
    def qualify(id: UUID, form: QualifyForm | None = None) -> dict[str, Any]:
        form = form or QualifyForm()
        return funnel.qualify(id, force=form.force, reason=form.reason).to_dict()

    @app.post("/people/{id}/touches", status_code=201)
    def touch(id: UUID, form: TouchForm) -> dict[str, Any]:
        return funnel.touch(id, form.channel, form.outcome, note=form.note).model_dump(mode="json")

    @app.post("/people/{id}/avoid")
    def avoid(id: UUID) -> dict[str, Any]:
        return funnel.avoid(id, reason="asked us to stop").model_dump(mode="json")

    @app.post("/people/{id}/appointments", status_code=201)
    def book(id: UUID, form: AppointmentForm) -> dict[str, Any]:
        deal = funnel.set_appointment(
            id,
            appointment_at=form.appointment_at,
            owner=form.owner,
            setter=form.setter,
            force=form.force,
        )
        return deal.model_dump(mode="json")

    @app.post("/deals/{id}/{move}")
    def move(id: UUID, move: str, form: CloseForm | None = None) -> dict[str, Any]:
        form = form or CloseForm()
        if move == "win":
            deal = funnel.win(id, amount=form.amount)
        elif move == "lose":
            deal = funnel.lose(id, reason=form.reason or "", note=form.note)
        elif move in ("sit", "propose", "send_contract"):
            deal = getattr(funnel, move)(id)
        else:
            raise HTTPException(404, f"no deal move {move!r}")
        return deal.model_dump(mode="json")

    @app.get("/due")
    def due(owner: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return [item.to_dict() for item in funnel.due(owner=owner, limit=limit)]

    @app.get("/report")
    def report(since: datetime | None = None, until: datetime | None = None) -> Any:
        import json

        return json.loads(funnel.report(since=since, until=until).to_json())

    @app.get("/events")
    def events(after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return [event.model_dump(mode="json") for event in funnel.events(after, limit)]

    return app


def _default() -> FastAPI:  # pragma: no cover - for ``uvicorn crm_app:app``
    rules = Path("rules.toml")
    engine = QualificationEngine.from_toml(rules) if rules.exists() else None
    return create_app(Funnel(SqlRepository("sqlite:///crm.db"), engine=engine))


def __getattr__(name: str) -> Any:  # pragma: no cover - made on first use only
    if name == "app":
        return _default()
    raise AttributeError(name)
