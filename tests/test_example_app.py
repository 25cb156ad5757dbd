"""The example web CRM of docs/examples/crm_app.py, driven through its test client on
every store: capture, find, paging, due for a rep, touch, qualify, appointment, deal
moves, the report and the feed, with leadfunnel's errors as HTTP answers."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from leadfunnel import Funnel, Profile, QualificationEngine, Repository
from leadfunnel.rules import Source
from leadfunnel.testing import ManualClock

fastapi = pytest.importorskip("fastapi")
with warnings.catch_warnings():
    # Starlette's test client would rather have a newer httpx than FastAPI pins: not ours.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "crm_app.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("crm_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crm_app"] = module  # FastAPI resolves the annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(repository: Repository, clock: ManualClock) -> TestClient:
    if type(repository).__name__ not in ("InMemoryRepository", "SqlRepository"):
        pytest.skip("memory and SQL")
    return TestClient(load_example().create_app(Funnel(repository, clock=clock)))


def pat(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "first_name": "Pat",
        "last_name": f"L{n}",
        "email": f"pat{n}@acme{n}.example.com",
        "company": f"Acme {n}",
        "source": "webinar",
        "owner": "ana" if n % 2 else "ben",
        **fields,
    }


def test_a_lead_from_the_form_to_a_won_deal(client: TestClient) -> None:
    made = client.post("/leads", json=pat(1, phone="512 555 0101"))
    assert made.status_code == 201
    assert made.json()["new"] is True
    lead_id = made.json()["id"]
    again = client.post("/leads", json=pat(1, city="Austin"))
    assert (again.status_code, again.json()["new"], again.json()["city"]) == (200, False, "Austin")
    assert client.get("/people", params={"phone": "(512) 555-0101"}).json()["id"] == lead_id
    assert client.get("/people", params={"email": "nobody@x.example.com"}).status_code == 404

    touched = client.post(
        f"/people/{lead_id}/touches", json={"channel": "call", "outcome": "connected"}
    )
    assert touched.status_code == 201
    refused = client.post(f"/leads/{lead_id}/qualify")
    assert refused.status_code == 400  # no engine configured: a ConfigError
    assert "force=True" in refused.json()["detail"]
    raw = client.post(f"/people/{lead_id}/appointments", json={"owner": "sam"})
    assert raw.status_code == 409  # a raw lead is not booked without force
    assert "convert" in raw.json()["detail"]
    # Qualified by hand, booked, and taken to a won deal, all over HTTP.
    by_hand = client.post(f"/leads/{lead_id}/qualify", json={"force": True, "reason": "met"})
    assert by_hand.json()["status"] == "qualified"
    deal = client.post(f"/people/{lead_id}/appointments", json={"owner": "sam"})
    assert deal.status_code == 201
    deal_id = deal.json()["id"]
    for move in ("sit", "propose", "send_contract"):
        assert client.post(f"/deals/{deal_id}/{move}").status_code == 200
    won = client.post(f"/deals/{deal_id}/win", json={"amount": "25000"})
    assert won.json()["stage"] == "won"
    person = client.get("/people", params={"email": pat(1)["email"]}).json()
    assert (person["kind"], person["type"]) == ("contact", "client")


def test_a_lead_is_judged_by_the_funnels_rules_and_a_referral_booked_at_once(
    repository: Repository, clock: ManualClock
) -> None:
    if type(repository).__name__ not in ("InMemoryRepository", "SqlRepository"):
        pytest.skip("memory and SQL")
    engine = QualificationEngine([Profile("webinar", [Source(["webinar"])])])
    funnel = Funnel(repository, clock=clock, engine=engine, phone_region="DE")
    client = TestClient(load_example().create_app(funnel))
    fits = client.post("/leads", json=pat(3, phone="030 1234567")).json()
    assert fits["phone"] == "+49301234567"  # validated in the funnel's phone region
    judged = client.post(f"/leads/{fits['id']}/qualify").json()
    assert (judged["status"], judged["profile"]) == ("qualified", "webinar")
    referral = client.post("/leads", json=pat(4, source="referral")).json()
    booked = client.post(f"/people/{referral['id']}/appointments", json={"force": True})
    assert booked.status_code == 201
    assert booked.json()["stage"] == "appointment_set"


def test_deal_moves_due_report_and_the_feed(
    client: TestClient, repository: Repository, clock: ManualClock
) -> None:
    contact = client.post("/leads", json=pat(2)).json()
    funnel_lead = contact["id"]
    # Book through the library (qualify by hand) on the app's clock, then move the deal
    # over HTTP (a move dated before the booking would be refused).
    deal_id = Funnel(repository, clock=clock).set_appointment(funnel_lead, force=True).id
    for move in ("sit", "propose", "send_contract"):
        assert client.post(f"/deals/{deal_id}/{move}").json()["stage"] != "lost"
    won = client.post(f"/deals/{deal_id}/win", json={"amount": "60000"})
    assert (won.json()["stage"], won.json()["amount"]) == ("won", "60000")
    assert client.post(f"/deals/{deal_id}/sit").status_code == 409  # won is won
    assert client.post(f"/deals/{deal_id}/dance").status_code == 404
    report = client.get("/report").json()
    assert [s["count"] for s in report["steps"]][-1] == 1
    names = [e["name"] for e in client.get("/events", params={"after": 0}).json()]
    assert names[:2] == ["capture", "convert"]
    assert names[-1] == "win"


def test_pages_and_a_reps_due_list(client: TestClient) -> None:
    ids = [client.post("/leads", json=pat(n)).json()["id"] for n in range(10, 17)]
    first = client.get("/leads", params={"limit": 3}).json()
    assert first["total"] == 7
    seen = [x["id"] for x in first["items"]]
    after = first["next"]
    while after:
        page = client.get("/leads", params={"limit": 3, "after": after}).json()
        seen += [x["id"] for x in page["items"]]
        after = page["next"]
    assert seen == ids
    anas = client.get("/due", params={"owner": "ana", "limit": 2}).json()
    assert len(anas) == 2
    assert {item["owner"] for item in anas} == {"ana"}


def test_bad_input_is_a_clear_4xx(client: TestClient) -> None:
    assert client.post("/leads", json=pat(20, email="not-an-email")).status_code == 422
    lead_id = client.post("/leads", json=pat(21)).json()["id"]
    bad = client.post(f"/people/{lead_id}/touches", json={"channel": "fax", "outcome": "x"})
    assert bad.status_code == 422
    assert "call, email" in bad.json()["detail"]
    assert client.get("/leads", params={"status": "hot"}).status_code == 422
    for limit in (0, 501, 2**63):  # a page is 1 to 500 leads
        assert client.get("/leads", params={"limit": limit}).status_code == 422
    person = client.post("/leads", json=pat(22)).json()["id"]
    assert client.post(f"/people/{person}/avoid").json()["status"] == "avoid"
    again = client.post("/leads", json=pat(22))
    assert again.status_code == 409  # avoid-listed
    assert again.json()["error"] == "AvoidListedError"
    missing = client.get("/leads/00000000-0000-7000-8000-000000000000")
    assert missing.status_code == 404
