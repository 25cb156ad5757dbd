"""Reports on every backend: won revenue in the period, the open pipeline, the overall
conversion, and the labelled grouped CSV, table and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from conftest import T0, person
from leadfunnel import Funnel, Lead
from leadfunnel._csv_out import FORMULA_STARTS
from leadfunnel.testing import ManualClock


def deal(funnel: Funnel, n: int, *, until: str = "won", **fields: Any) -> Any:
    amount = fields.pop("amount", None)
    owner = fields.pop("deal_owner", "sam")
    lead = funnel.capture(Lead(**person(n, **fields)))
    funnel.qualify(lead, force=True)
    opportunity = funnel.set_appointment(lead, owner=owner, setter="sue")
    for step in (funnel.sit, funnel.propose, funnel.send_contract):
        if opportunity.stage == until:
            break
        opportunity = step(opportunity)
    if until == "won":
        return funnel.win(opportunity, amount=amount)
    if amount is not None:
        opportunity = funnel.update(opportunity.model_copy(update={"amount": Decimal(amount)}))
    return opportunity


def test_won_revenue_counts_the_deals_won_in_the_period(funnel: Funnel, clock: ManualClock) -> None:
    deal(funnel, 1, amount="12000.50", source="webinar")
    clock.advance(days=10)
    deal(funnel, 2, amount=30_000, source="ads", deal_owner="kim")
    deal(funnel, 3, source="ads")  # won without an amount: a deal, no money
    whole = funnel.report()
    assert whole.won_revenue == Decimal("42000.50")
    assert whole.won_deals == 3
    later = funnel.report(since=T0 + timedelta(days=5))
    assert (later.won_revenue, later.won_deals) == (Decimal(30_000), 2)
    earlier = funnel.report(until=T0 + timedelta(days=5))
    assert (earlier.won_revenue, earlier.won_deals) == (Decimal("12000.50"), 1)
    assert whole.conversion == 1.0
    by_source = funnel.report(by="source").groups
    assert by_source["ads"].won_revenue == 30_000
    assert by_source["webinar"].won_revenue == Decimal("12000.50")
    by_owner = funnel.report(by="owner").groups
    assert by_owner["kim"].won_revenue == 30_000
    assert by_owner["sam"].won_deals == 2
    by_month = funnel.report(by="month").groups
    assert by_month["2026-03"].won_deals == 3


def test_the_open_pipeline_sums_the_open_deals_now(funnel: Funnel, clock: ManualClock) -> None:
    deal(funnel, 1, until="proposing", amount=40_000)
    deal(funnel, 2, until="contract_sent", amount=25_000)
    deal(funnel, 3, until="appointment_set")  # booked, no amount yet
    lost = deal(funnel, 4, until="proposing", amount=99_000)
    funnel.lose(lost, reason="price")
    deal(funnel, 5, amount=1_000)
    report = funnel.report(since=T0 + timedelta(days=1))  # the pipeline is now, any period
    assert report.pipeline_value == 65_000
    assert (report.open_deals, report.unpriced_deals) == (3, 1)
    assert report.won_revenue == 0
    text = str(report)
    assert "Open pipeline now: 65,000 (3 open deals, 1 without an amount yet)" in text
    assert "Won revenue: 0 (0 deals)" in text
    data = json.loads(funnel.report().to_json())
    assert data["pipeline"] == {"value": "65000.00", "open_deals": 3, "unpriced_deals": 1}
    assert data["won_revenue"] == "1000.00"


def test_the_table_and_json_name_the_period_conversion_and_alerts(
    funnel: Funnel, clock: ManualClock
) -> None:
    for n in range(3):
        deal(funnel, n, amount=1_000)
    funnel.disqualify(funnel.capture(Lead(**person(9))))
    since = T0.replace(hour=0)
    report = funnel.report(since=since, until=since + timedelta(days=7))
    text = str(report)
    assert text.startswith("Funnel report, 2026-03-02 to 2026-03-08\n")
    assert "Raw leads to won: 75.0% (3 of 4)" in text
    assert "Won revenue: 3,000 (3 deals)" in text
    data = json.loads(report.to_json())
    assert data["period"] == "2026-03-02 to 2026-03-08"
    assert data["conversion"] == 0.75
    assert data["failing_checks"] == ["touches_per_qualified"]  # booked: followed up
    assert data["weak_setters"] == []


def test_the_grouped_csv_labels_the_whole_funnel_and_the_group_without_a_value(
    funnel: Funnel,
) -> None:
    deal(funnel, 1, source="webinar")
    funnel.capture(Lead(**person(2, source=None)))
    funnel.capture(Lead(**person(3, source="=HYPERLINK(1)")))
    text = funnel.report(by="source").to_csv(groups=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["scope", "group", "step", "count", "rate", "overall"]
    labels = [(row["scope"], row["group"]) for row in rows if row["step"] == "raw"]
    assert labels == [
        ("all", ""),
        ("source", "'=HYPERLINK(1)"),
        ("source", "webinar"),
        ("source", "(none)"),
    ]
    raw = {(row["scope"], row["group"]): row["count"] for row in rows if row["step"] == "raw"}
    assert raw[("all", "")] == "3"
    assert raw[("source", "(none)")] == "1"
    assert not [
        cell
        for row in csv.reader(io.StringIO(text))
        for cell in row
        if cell.startswith(FORMULA_STARTS)
    ]
    # Without groups the CSV keeps its four columns.
    assert funnel.report().to_csv().splitlines()[0] == "step,count,rate,overall"
    assert "source = (none)" in str(funnel.report(by="source"))
