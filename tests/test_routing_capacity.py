"""Routing with capacity and weights: OwnerGroup(capacity=, weights=), per funnel-clock
UTC day, from Python and from the routing TOML."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import person
from leadfunnel import ConfigError, Funnel, Lead, OwnerGroup, RoutingRules, SqlRepository
from leadfunnel.testing import ManualClock

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def lead(n: int, **fields: Any) -> Lead:
    return Lead(**person(n, **fields))


def team(**options: Any) -> RoutingRules:
    return RoutingRules(
        [
            OwnerGroup(
                "inbound",
                ["ana", "ben", "cal"],
                backup="dee",
                capacity={"ana": 20, "ben": 8, "dee": 3},
                weights={"ana": 2},
            )
        ],
        default="inbound",
        **options,
    )


def test_a_day_of_captures_gives_each_owner_their_share_until_capacity() -> None:
    clock = ManualClock(MONDAY)
    router = team()
    funnel = Funnel(clock=clock, router=router)
    router.attach(funnel)
    owners: list[str | None] = []
    for n in range(60):  # a lead every ten minutes, 08:00 to 17:50
        owners.append(funnel.capture(lead(n)).owner)
        clock.advance(minutes=10)

    # While all three can take leads, ana (weight 2) gets two of every four, interleaved.
    assert owners[:8] == ["ana", "ben", "cal", "ana"] * 2
    # Ben reaches his 8 on the 32nd lead; from then on ana and cal share 2 to 1.
    assert Counter(owners[:32]) == {"ana": 16, "ben": 8, "cal": 8}
    # Ana reaches her 20 four leads later (two of every three), within six; cal then
    # takes every lead (no capacity), and the backup takes none while an owner can.
    assert Counter(owners[32:41]) == {"ana": 4, "cal": 5}
    assert Counter(owners) == {"ana": 20, "ben": 8, "cal": 32}
    assert router.assigned_today() == {"ana": 20, "ben": 8, "cal": 32}
    stored = Counter(x.owner for x in funnel.leads())
    assert stored == Counter(owners)


def test_when_every_owner_is_full_or_out_the_backup_then_nobody_takes_the_lead() -> None:
    clock = ManualClock(MONDAY)
    router = team()
    funnel = Funnel(clock=clock, router=router)
    router.attach(funnel)
    router.set_unavailable("cal")
    owners = [funnel.capture(lead(n)).owner for n in range(33)]
    # 28 leads fill ana (20) and ben (8); the backup takes 3 (her capacity); then nobody.
    assert Counter(owners) == {"ana": 20, "ben": 8, "dee": 3, None: 2}
    assert owners[-2:] == [None, None]
    # Unassigned leads are stored without an owner, and due() still lists them.
    assert {item.owner for item in funnel.due()} >= {None}


def test_the_counts_restart_on_the_next_utc_day_of_the_funnel_clock() -> None:
    clock = ManualClock(datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    router = RoutingRules(
        [OwnerGroup("g", ["ana", "ben"], capacity={"ana": 1, "ben": 1})], default="g"
    )
    funnel = Funnel(clock=clock, router=router)
    router.attach(funnel)
    assert [funnel.capture(lead(n)).owner for n in range(3)] == ["ana", "ben", None]
    clock.advance(minutes=59)  # 23:59 UTC: still Monday
    assert funnel.capture(lead(3)).owner is None
    clock.advance(minutes=1)  # midnight UTC: a new day
    # Turns carry over from day to day rather than restarting at the first owner.
    assert [funnel.capture(lead(n)).owner for n in (4, 5, 6)] == ["ben", "ana", None]
    assert router.assigned_today() == {"ana": 1, "ben": 1}


def test_the_day_is_the_utc_day_even_for_a_clock_in_another_zone() -> None:
    from zoneinfo import ZoneInfo

    chicago = ZoneInfo("America/Chicago")
    # 19:00 in Chicago on Monday is 01:00 UTC on Tuesday.
    clock = ManualClock(datetime(2026, 3, 2, 17, 0, tzinfo=chicago))
    router = RoutingRules([OwnerGroup("g", ["ana"], capacity={"ana": 1})], default="g")
    funnel = Funnel(clock=clock, router=router)
    router.attach(funnel)
    assert funnel.capture(lead(1)).owner == "ana"
    clock.advance(hours=2)  # 19:00 Chicago, Tuesday in UTC
    assert funnel.capture(lead(2)).owner == "ana"
    clock.advance(hours=4)  # 23:00 Chicago, still Tuesday in UTC
    assert funnel.capture(lead(3)).owner is None


def test_a_router_made_with_its_own_clock_keeps_it() -> None:
    mine = ManualClock(MONDAY)
    router = RoutingRules([OwnerGroup("g", ["ana"], capacity={"ana": 1})], clock=mine)
    router.use_clock(ManualClock(MONDAY + timedelta(days=5)))
    assert router.clock is mine


def test_attach_starts_the_day_from_the_leads_the_store_already_holds(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'f.db'}"
    clock = ManualClock(MONDAY)
    router = team()
    first = Funnel(SqlRepository(db), clock=clock, router=router)
    router.attach(first)
    owners = [first.capture(lead(n)).owner for n in range(12)]
    assert Counter(owners) == {"ana": 6, "ben": 3, "cal": 3}
    # Yesterday's leads do not count against today.
    first.capture(lead(99, owner="ben"), at=MONDAY - timedelta(days=1))
    first.repository.close()

    # The process restarts: a new router, the same day.
    restarted = team()
    second = Funnel(SqlRepository(db), clock=clock, router=restarted)
    restarted.attach(second)
    assert restarted.assigned_today() == {"ana": 6, "ben": 3}  # owners with a capacity
    more = [second.capture(lead(n)).owner for n in range(12, 40)]
    assert Counter(owners + more)["ben"] == 8
    assert Counter(owners + more)["ana"] == 20


def test_equal_weights_are_plain_round_robin_and_weights_interleave() -> None:
    even = RoutingRules([OwnerGroup("g", ["a", "b", "c"])], default="g")
    assert [even.assign(lead(n)) for n in range(6)] == ["a", "b", "c"] * 2
    skewed = RoutingRules(
        [OwnerGroup("g", ["a", "b", "c"], weights={"a": 5, "b": 1, "c": 1})], default="g"
    )
    picks = "".join(str(skewed.assign(lead(n))) for n in range(70))
    assert Counter(picks) == {"a": 50, "b": 10, "c": 10}
    # Interleaved, not in blocks: b and c each get a lead in every seven in a row.
    assert picks[:7] == "aabacaa"
    assert all({"b", "c"} <= set(picks[i : i + 7]) for i in range(len(picks) - 6))
    fractional = RoutingRules(
        [OwnerGroup("g", ["a", "b"], weights={"a": 1.5, "b": 0.5})], default="g"
    )
    assert Counter(fractional.assign(lead(n)) for n in range(40)) == {"a": 30, "b": 10}


def test_capacity_and_weights_from_toml_and_from_a_dict(tmp_path: Path) -> None:
    file = tmp_path / "routing.toml"
    file.write_text(
        """
default = "inbound"

[[groups]]
name = "inbound"
owners = ["ana", "ben"]
backup = "dee"
capacity = { ana = 2, dee = 1 }
weights = { ana = 3 }
""",
        encoding="utf-8",
    )
    from_toml = RoutingRules.from_toml(file)
    group = from_toml.groups["inbound"]
    assert dict(group.capacity or {}) == {"ana": 2, "dee": 1}
    assert dict(group.weights or {}) == {"ana": 3}
    assert (group.weight("ben"), group.capacity_of("ben")) == (1, None)
    from_dict = RoutingRules.from_dict(
        {
            "default": "inbound",
            "groups": [
                {
                    "name": "inbound",
                    "owners": ["ana", "ben"],
                    "backup": "dee",
                    "capacity": {"ana": 2, "dee": 1},
                    "weights": {"ana": 3},
                }
            ],
        }
    )
    for router in (from_toml, from_dict):
        router.use_clock(ManualClock(MONDAY))
        # ana (weight 3) would take three of four, but her capacity is 2.
        picks = [router.assign(lead(n)) for n in range(6)]
        assert picks == ["ana", "ana", "ben", "ben", "ben", "ben"]


def test_the_group_keeps_read_only_mappings() -> None:
    capacity = {"ana": 2}
    group = OwnerGroup("g", ["ana"], capacity=capacity)
    capacity["ana"] = 100  # the caller's dict is copied
    assert group.capacity_of("ana") == 2
    with pytest.raises(TypeError):
        group.capacity["ana"] = 5  # type: ignore[index]
    assert OwnerGroup("g", ["ana"]).capacity == {}
    assert hash(group) == hash(OwnerGroup("g", ["ana"], capacity={"ana": 3}))
    assert group != OwnerGroup("g", ["ana"], capacity={"ana": 3})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"capacity": {"zed": 3}}, "capacity names 'zed', who is not an owner or the backup"),
        ({"weights": {"dee": 2}}, "weights names 'dee', who is not an owner of the group"),
        ({"capacity": {"ana": -1}}, "capacity['ana'] must be a whole number of leads per day"),
        ({"capacity": {"ana": 2.5}}, "capacity['ana'] must be a whole number"),
        ({"capacity": {"ana": True}}, "capacity['ana'] must be a whole number"),
        ({"weights": {"ana": 0}}, "weights['ana'] must be a number above 0"),
        ({"weights": {"ana": float("nan")}}, "weights['ana'] must be a number above 0"),
        ({"weights": {"ana": "2"}}, "weights['ana'] must be a number above 0"),
        ({"capacity": ["ana", 2]}, "capacity must map owners to numbers"),
    ],
)
def test_bad_capacity_or_weights_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        OwnerGroup("inbound", ["ana", "ben"], backup="dee", **options)
    assert message in str(info.value)
    assert "owner group 'inbound'" in str(info.value)
    data = {"groups": [{"name": "inbound", "owners": ["ana", "ben"], "backup": "dee", **options}]}
    with pytest.raises(ConfigError) as from_data:
        RoutingRules.from_dict(data)
    assert str(from_data.value).startswith("routing: groups[0] ('inbound'): ")
    assert message in str(from_data.value)


def test_an_unknown_group_key_lists_capacity_and_weights() -> None:
    with pytest.raises(ConfigError, match="known keys: name, owners, backup, capacity, weights"):
        RoutingRules.from_dict({"groups": [{"name": "g", "owners": ["a"], "cap": {"a": 1}}]})


def test_an_import_routes_only_the_rows_it_stores() -> None:
    """A duplicate (of a row above it or of a stored person), an avoided person or a
    rejected row takes nobody's turn and nobody's capacity (Odoo's assignment tests:
    duplicates are not assigned and do not count toward a member's quota)."""
    group = OwnerGroup("g", ["ana", "ben"], capacity={"ana": 5, "ben": 5})
    router = RoutingRules([group], default="g")
    funnel = Funnel(clock=ManualClock(MONDAY), router=router)
    router.attach(funnel)
    stored = funnel.add(lead(1, owner="zed"))
    avoided = funnel.avoid(funnel.add(lead(2, owner="zed")))
    report = funnel.import_leads(
        [
            {"email": "a@x.example.com"},
            {"email": "A@x.example.com"},  # the row above again
            {"email": stored.email},
            {"email": avoided.email},
            {"email": "not an e-mail"},
            {"email": "b@x.example.com"},
            {"email": "c@x.example.com"},
        ]
    )
    assert (len(report.duplicates), len(report.avoided), len(report.rejected)) == (2, 1, 1)
    assert [funnel.get_lead(i).owner for i in report.added] == ["ana", "ben", "ana"]
    assert router.assigned_today() == {"ana": 2, "ben": 1}


def test_leads_stored_with_an_owner_count_as_attach_counts_them(tmp_path: Path) -> None:
    """A lead given an owner by hand, or imported with one and created today, fills
    that owner's day in the live router as it does in a router attached after a
    restart: the two agree, and the next lead goes where either would send it."""
    db = f"sqlite:///{tmp_path / 'f.db'}"
    clock = ManualClock(MONDAY)

    def router() -> RoutingRules:
        group = OwnerGroup("g", ["ana", "ben"], backup="cal", capacity={"ana": 2, "ben": 2})
        return RoutingRules([group], default="g")

    live = router()
    funnel = Funnel(SqlRepository(db), clock=clock, router=live)
    live.attach(funnel)
    assert [funnel.capture(lead(n)).owner for n in range(2)] == ["ana", "ben"]
    funnel.capture(lead(10, owner="ana"))  # by hand
    funnel.import_leads([{**person(11), "owner": "ben", "created_at": MONDAY}])
    funnel.import_leads([{**person(12), "owner": "ben", "created_at": MONDAY - timedelta(days=3)}])
    assert live.assigned_today() == {"ana": 2, "ben": 2}
    funnel.repository.close()

    restarted = router()
    again = Funnel(SqlRepository(db), clock=clock, router=restarted)
    restarted.attach(again)
    assert restarted.assigned_today() == live.assigned_today()
    assert again.capture(lead(20)).owner == "cal"  # both are full: the backup
