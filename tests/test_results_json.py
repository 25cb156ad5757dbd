"""Every result type has one JSON shape: ``to_dict()``, which ``to_json()`` dumps and
pydantic (so FastAPI response models) serialises through, from one code path."""

from __future__ import annotations

import json
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest

from conftest import outputs_under_hash_seeds, person
from leadfunnel import (
    Captured,
    Erasure,
    FollowUp,
    Funnel,
    FunnelReport,
    ImportReport,
    Lead,
    QualificationEngine,
    QualificationResult,
    RepList,
)
from leadfunnel.testing import ManualClock


def results(funnel: Funnel, clock: ManualClock) -> list[Any]:
    funnel.engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "it", "rules": [{"rule": "niche", "industries": ["IT Services"]}]}]}
    )
    captured = funnel.capture_result(Lead(**person(1)))
    qualified = funnel.qualify(captured.record)
    imported = funnel.import_leads([person(2), {"email": "bad"}, person(2)])
    later = clock.now() + timedelta(days=3)
    due = funnel.due(at=later)
    erased = funnel.erase(imported.added[0])
    return [
        captured,
        qualified,
        imported,
        due[0],
        funnel.report(),
        funnel.rep_list("never_booked", at=later),
        erased,
        funnel.compare(clock.now() - timedelta(days=7), clock.now() + timedelta(days=7)),
    ]


def test_every_result_has_one_json_shape(funnel: Funnel, clock: ManualClock) -> None:
    made = results(funnel, clock)
    kinds = {type(result) for result in made}
    assert {
        Captured,
        QualificationResult,
        ImportReport,
        FollowUp,
        FunnelReport,
        RepList,
        Erasure,
    } <= kinds
    for result in made:
        shape = result.to_dict()
        assert json.loads(json.dumps(shape)) == shape  # plain JSON data
        assert json.loads(result.to_json()) == shape
        dumped = pydantic.TypeAdapter(type(result)).dump_python(result, mode="json")
        assert dumped == shape, type(result).__name__


def test_a_fastapi_endpoint_annotated_with_a_result_answers_the_same_shape(
    funnel: Funnel, clock: ManualClock
) -> None:
    pytest.importorskip("fastapi")
    from fastapi import FastAPI

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    made = results(funnel, clock)
    report = next(r for r in made if isinstance(r, FunnelReport))
    qualified = next(r for r in made if isinstance(r, QualificationResult))
    app = FastAPI()

    @app.get("/report")
    def get_report() -> FunnelReport:
        return report

    @app.get("/qualified")
    def get_qualified() -> QualificationResult:
        return qualified

    client = TestClient(app)
    assert client.get("/report").json() == report.to_dict()
    assert client.get("/qualified").json() == qualified.to_dict()


# Run in a process of its own: every result of the list above, as JSON text, with the
# ids and times made fresh in each run left out.
_EVERY_RESULT = """
import re, sys
from datetime import UTC, datetime
sys.path.insert(0, sys.argv[1])
from conftest import outputs_under_hash_seeds, person
from leadfunnel import Funnel, Lead
from leadfunnel.testing import ManualClock
from test_results_json import results

clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
funnel = Funnel(clock=clock)
sets = dict(
    tags=[f"tag-{c}" for c in "jihgfedcba"],
    needs=[f"need {n}" for n in range(8)],
    other_emails=[f"o{n}@other.example.com" for n in range(6)],
    opt_outs=["sms", "social", "meeting", "direct_mail"],
)
captured = funnel.capture_result(Lead(**person(7, **sets)))
for result in [captured, *results(funnel, clock)]:
    print(re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<id>", result.to_json()))
"""


def test_every_result_gives_the_same_json_in_every_process() -> None:
    # Each process hashes strings with its own seed, and so orders sets its own way.
    tests = str(Path(__file__).parent)
    outputs = outputs_under_hash_seeds("-c", _EVERY_RESULT, tests)
    assert len(outputs) == 1
    assert '"tag-a",\n      "tag-b",' in outputs.pop()  # the captured record's tags


def test_a_model_s_own_set_fields_are_sorted_too_at_any_depth() -> None:
    from leadfunnel._results import model_data

    class Site(pydantic.BaseModel):
        racks: frozenset[int]

    class MyLead(Lead):
        licences: set[str] = set()
        sites: dict[str, Site] = {}
        pairs: frozenset[tuple[str, int]] = frozenset()

    lead = MyLead(
        email="pat@acme.example.com",
        tags={"b", "c", "a"},
        licences={"z", "x", "y"},
        sites={"austin": Site(racks={30, 4, 200})},
        pairs={("b", 2), ("a", 10), ("a", 9)},
    )
    data = model_data(lead)
    assert data["tags"] == ["a", "b", "c"]
    assert data["licences"] == ["x", "y", "z"]
    assert data["sites"] == {"austin": {"racks": [4, 30, 200]}}
    assert data["pairs"] == [["a", 9], ["a", 10], ["b", 2]]
    assert data == {**lead.model_dump(mode="json"), **data}  # nothing else changed
