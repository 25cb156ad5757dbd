"""Lead routing: RoutingRules, OwnerGroup and Route, in Python and from data."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import person
from leadfunnel import (
    ConfigError,
    Contact,
    Funnel,
    Lead,
    OwnerGroup,
    Route,
    Router,
    RoutingRules,
)


def lead(n: int = 1, **fields: Any) -> Lead:
    return Lead(**person(n, **fields))


def rules() -> RoutingRules:
    return RoutingRules(
        groups=[
            OwnerGroup("emea", ["ana", "ben"], backup="carla"),
            OwnerGroup("enterprise", ["dan", "eve", "fay"], backup="gus"),
            OwnerGroup("inbound", ["hal", "ivy"], backup="jo"),
        ],
        routes=[
            Route("emea", countries=["GB", "Germany", "fr"], name="europe"),
            Route("enterprise", min_employees=500),
            Route("inbound", sources=["Webinar", "website"], regions=["tx", "CA"]),
        ],
        default="inbound",
    )


def test_routing_rules_are_a_router() -> None:
    router: Router = rules()
    assert router.assign(lead()) in ("hal", "ivy")


def test_the_first_matching_route_wins_in_order() -> None:
    router = rules()
    big_german = lead(1, country="DE", region="BE", employees=800)
    assert router.group_for(big_german) == router.groups["emea"]  # listed before size
    assert router.group_for(lead(2, employees=800)) == router.groups["enterprise"]
    assert router.group_for(lead(3, source="WEBSITE", region="ca")) == router.groups["inbound"]
    # No route matches (source is a trade show): the default group.
    assert router.group_for(lead(4, source="trade-show")) == router.groups["inbound"]


def test_without_a_default_an_unmatched_lead_stays_unassigned() -> None:
    router = RoutingRules([OwnerGroup("emea", ["ana"])], [Route("emea", countries=["GB"])])
    assert router.assign(lead(1)) is None
    assert router.assign(lead(2, country="GB")) == "ana"


def test_owners_take_turns_within_a_group() -> None:
    router = rules()
    owners = [router.assign(lead(n, employees=1000)) for n in range(7)]
    assert owners == ["dan", "eve", "fay", "dan", "eve", "fay", "dan"]
    # Each group keeps its own turn.
    assert router.assign(lead(8, country="GB")) == "ana"
    assert router.assign(lead(9, employees=1000)) == "eve"


def test_unavailable_owners_are_skipped_and_the_backup_takes_over_when_all_are_out() -> None:
    router = rules()
    router.set_unavailable("eve")
    assert router.unavailable == frozenset({"eve"})
    assert not router.is_available("eve")
    owners = [router.assign(lead(n, employees=1000)) for n in range(4)]
    assert owners == ["dan", "fay", "dan", "fay"]
    router.set_unavailable("dan", "fay")
    assert router.assign(lead(5, employees=1000)) == "gus"
    router.set_unavailable("gus")
    assert router.assign(lead(6, employees=1000)) is None
    router.set_available("eve")
    assert router.assign(lead(7, employees=1000)) == "eve"


def test_each_condition_must_hold_and_missing_fields_do_not_match() -> None:
    route = Route(
        "g",
        countries=["US"],
        regions=["TX"],
        postal_codes=["787", "75 0"],
        min_employees=10,
        max_employees=50,
        sources=["webinar"],
        tags=["VIP"],
    )
    fit = lead(1, postal_code="78701", tags={"vip"})
    assert route.matches(fit)
    assert route.matches(fit.model_copy(update={"postal_code": "75001"}))
    assert not route.matches(fit.model_copy(update={"postal_code": "10001"}))
    assert not route.matches(fit.model_copy(update={"postal_code": None}))
    assert not route.matches(fit.model_copy(update={"country": "CA"}))
    assert not route.matches(fit.model_copy(update={"region": "NY"}))
    assert not route.matches(fit.model_copy(update={"region": None}))
    assert not route.matches(fit.model_copy(update={"employees": 9}))
    assert not route.matches(fit.model_copy(update={"employees": 51}))
    assert not route.matches(fit.model_copy(update={"employees": None}))
    assert not route.matches(fit.model_copy(update={"source": "referral"}))
    assert not route.matches(fit.model_copy(update={"tags": frozenset()}))
    assert Route("g").matches(lead(2, country=None))  # no condition: everyone


def test_a_profile_route_matches_qualified_leads_and_never_contacts() -> None:
    route = Route("g", profiles=["MSP-owner"])
    assert route.matches(lead(1).model_copy(update={"profile": "msp-owner"}))
    assert not route.matches(lead(1))
    assert not route.matches(Contact(**person(1)))


def test_backup_for_names_the_backup_of_the_owners_group() -> None:
    router = rules()
    assert router.backup_for("ana") == "carla"
    assert router.backup_for("eve", lead(1, employees=900)) == "gus"
    # Someone in no group, or nobody: the group the lead routes to.
    assert router.backup_for("stranger", lead(2, country="FR")) == "carla"
    assert router.backup_for(None, lead(3, employees=900)) == "gus"
    assert router.backup_for(None) == "jo"  # the default group
    # The backup's own items go to a colleague; an unavailable backup is skipped.
    assert router.backup_for("carla") == "ana"
    router.set_unavailable("carla", "ana")
    assert router.backup_for("ben") is None
    assert router.backup_for("carla") == "ben"


def test_backup_for_prefers_the_group_the_lead_routes_to() -> None:
    router = RoutingRules(
        [OwnerGroup("a", ["x"], backup="bx"), OwnerGroup("b", ["x"], backup="by")],
        [Route("b", countries=["GB"])],
        default="a",
    )
    assert router.backup_for("x") == "bx"
    assert router.backup_for("x", lead(1, country="GB")) == "by"
    no_default = RoutingRules([OwnerGroup("a", ["x"], backup="bx")])
    assert no_default.backup_for(None) is None
    assert no_default.backup_for("nobody", lead(1)) is None


def test_the_funnel_routes_new_leads_on_add_capture_and_import() -> None:
    funnel = Funnel(router=rules())
    added = funnel.add(lead(1, employees=600))
    captured = funnel.capture(lead(2, employees=600))
    own = funnel.capture(lead(3, employees=600, owner="zoe"))
    report = funnel.import_leads([person(4, employees=600), person(5, employees=600)])
    imported = [funnel.get(i) for i in report.added]
    assert [added.owner, captured.owner, own.owner] == ["dan", "eve", "zoe"]
    assert [r.owner for r in imported] == ["fay", "dan"]


def test_round_robin_is_fair_across_threads() -> None:
    router = rules()
    counts: Counter[str | None] = Counter()
    lock = threading.Lock()

    def work() -> None:
        for n in range(300):
            owner = router.assign(lead(n, employees=1000))
            with lock:
                counts[owner] += 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == Counter({"dan": 400, "eve": 400, "fay": 400})


# --- configuration from data ----------------------------------------------------------

CONFIG: dict[str, Any] = {
    "default": "inbound",
    "unavailable": ["ben"],
    "groups": [
        {"name": "emea", "owners": ["ana", "ben"], "backup": "carla"},
        {"name": "inbound", "owners": ["hal", "ivy"]},
    ],
    "routes": [
        {"group": "emea", "name": "europe", "countries": ["GB", "DE"]},
        {"group": "inbound", "min_employees": 1, "max_employees": 100, "sources": ["webinar"]},
    ],
}

TOML = """
default = "inbound"
unavailable = ["ben"]

[[groups]]
name = "emea"
owners = ["ana", "ben"]
backup = "carla"

[[groups]]
name = "inbound"
owners = ["hal", "ivy"]

[[routes]]
group = "emea"
name = "europe"
countries = ["GB", "DE"]

[[routes]]
group = "inbound"
min_employees = 1
max_employees = 100
sources = ["webinar"]
"""


def test_rules_from_a_dict_and_from_toml_are_the_same(tmp_path: Path) -> None:
    file = tmp_path / "routing.toml"
    file.write_text(TOML, encoding="utf-8")
    for router in (RoutingRules.from_dict(CONFIG), RoutingRules.from_toml(file)):
        assert router.default == "inbound"
        assert router.unavailable == frozenset({"ben"})
        assert [g.name for g in router.groups.values()] == ["emea", "inbound"]
        assert router.routes[0] == Route("emea", countries=["GB", "DE"], name="europe")
        assert [router.assign(lead(n, country="GB")) for n in range(2)] == ["ana", "ana"]
        assert router.assign(lead(3)) == "hal"
        assert router.backup_for("ana") == "carla"
        assert router.backup_for("hal") == "ivy"  # no backup named: a colleague


def _with(**changes: Any) -> dict[str, Any]:
    return {**CONFIG, **changes}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(grops=[]), "unknown key 'grops'"),
        (_with(default="apac"), "default group 'apac' is not defined"),
        (_with(groups=[{"owners": ["a"]}]), "groups[0]: name is missing"),
        (_with(groups=[{"name": "x", "owners": []}], routes=[], default=None), "owners is empty"),
        (
            _with(groups=[{"name": "x", "owners": "ana"}], routes=[], default=None),
            "owners must be a list of strings",
        ),
        (
            _with(groups=[{"name": "x", "owners": ["a"], "lead": "b"}], routes=[], default=None),
            "groups[0] ('x'): unknown key 'lead'",
        ),
        (
            _with(groups=[{"name": "x", "owners": ["a"]}, {"name": "x", "owners": ["b"]}]),
            "two owner groups are named 'x'",
        ),
        (_with(routes=[{"group": "apac"}]), "unknown group 'apac'"),
        (_with(routes=[{"countries": ["GB"]}]), "routes[0]: group is missing"),
        (
            _with(routes=[{"group": "emea", "country": ["GB"]}]),
            "routes[0] ('emea'): unknown condition 'country'",
        ),
        (
            _with(routes=[{"group": "emea", "name": "eu", "countries": ["Atlantis"]}]),
            "routes[0] ('eu'): 'Atlantis' is not a country",
        ),
        (
            _with(routes=[{"group": "emea", "min_employees": 50, "max_employees": 10}]),
            "min_employees 50 is above max_employees 10",
        ),
        (_with(routes=[{"group": "emea", "min_employees": -1}]), "min_employees must be"),
        (_with(routes=[{"group": "emea", "sources": "webinar"}]), "sources must be a list"),
        (_with(routes="emea"), "routes must be a list of tables"),
        (_with(groups=["emea"]), "groups[0] must be a table"),
        (_with(unavailable="ben"), "unavailable must be a list"),
    ],
)
def test_a_bad_config_is_a_config_error_naming_what_is_wrong(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RoutingRules.from_dict(data)
    assert message in str(info.value)


def test_a_bad_toml_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        RoutingRules.from_toml(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[groups]\nname = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RoutingRules.from_toml(broken)


def test_python_objects_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="owners lists someone twice"):
        OwnerGroup("x", ["a", "a"])
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        OwnerGroup("", ["a"])
    with pytest.raises(ConfigError, match="must be OwnerGroup objects"):
        RoutingRules([{"name": "x"}])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="must be a Route"):
        RoutingRules([OwnerGroup("x", ["a"])], ["x"])  # type: ignore[list-item]


def test_an_avoid_list_record_takes_no_owner_and_no_turn() -> None:
    """Nobody follows up an avoided person: stored from an avoid list, it is given no
    owner and uses up nobody's turn or daily capacity."""
    router = RoutingRules(
        [OwnerGroup("inbound", ["ana", "ben"], capacity={"ana": 1})], default="inbound"
    )
    funnel = Funnel(router=router)
    stop = funnel.add(Lead(first_name="Stop", email="stop@x.example.com", status="avoid"))
    report = funnel.import_leads([{"email": "never@x.example.com", "status": "avoid"}])
    assert stop.owner is None
    assert funnel.get_lead(report.added[0]).owner is None
    first = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com"))
    assert first.owner == "ana"  # still ana's turn, and her one lead today


def test_set_unavailable_trims_and_refuses_a_name_no_group_has() -> None:
    router = RoutingRules([OwnerGroup("inbound", ["ana", "ben"], backup="carla")])
    router.set_unavailable(" ana ")
    assert router.unavailable == frozenset({"ana"})
    router.set_available("ana\t")
    assert router.unavailable == frozenset()
    with pytest.raises(ConfigError, match=r"no group has 'anna'.*ana, ben, carla"):
        router.set_unavailable("anna")
