"""Every result type has one JSON shape: ``to_dict()``, which ``to_json()`` dumps and
pydantic (so FastAPI response models) serialises through, from one code path."""

from __future__ import annotations

import json
import warnings
from datetime import timedelta
from typing import Any

import pydantic
import pytest

from conftest import person
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
