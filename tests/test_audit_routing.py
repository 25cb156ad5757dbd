"""Defects found by an audit of routing, rep lists, comparisons and charts (2026-11-30)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from leadfunnel import (
    ConfigError,
    Funnel,
    InvalidArgumentError,
    Lead,
    OwnerGroup,
    RoutingRules,
)
from leadfunnel._cli import main
from leadfunnel.testing import ManualClock

GROUPS = [OwnerGroup("inbound", owners=["hal", "ivy"])]


@pytest.mark.parametrize("default", [["inbound"], {"a": 1}, 3], ids=["list", "table", "int"])
def test_a_default_that_is_no_group_name_is_a_config_error(default: Any, tmp_path: Path) -> None:
    """``default = ["inbound"]`` raised ``TypeError: unhashable type``; the command line
    printed a traceback and exited 1 (docs/cli.md: status 2 and one line)."""
    with pytest.raises(ConfigError, match="default is the name of one group"):
        RoutingRules(GROUPS, default=default)
    with pytest.raises(ConfigError, match="default is the name of one group"):
        RoutingRules.from_dict(
            {"groups": [{"name": "inbound", "owners": ["hal"]}], "default": default}
        )
    if isinstance(default, list):
        toml = tmp_path / "routing.toml"
        toml.write_text('default = ["inbound"]\n[[groups]]\nname = "inbound"\nowners = ["hal"]\n')
        result = CliRunner().invoke(
            main, ["due", "--routing", str(toml), "--db", f"sqlite:///{tmp_path / 'f.db'}"]
        )
        assert result.exit_code == 2
        assert "default is the name of one group" in result.output


@pytest.mark.parametrize("groups", [None, "inbound", 3], ids=["None", "str", "int"])
def test_groups_and_routes_that_are_no_lists_are_config_errors(groups: Any) -> None:
    """``RoutingRules(None)`` raised TypeError."""
    with pytest.raises(ConfigError, match="groups is a list of OwnerGroup objects"):
        RoutingRules(groups)
    routes: Any = 3 if groups is None else groups  # (routes=None: no routes)
    with pytest.raises(ConfigError, match="routes is a list of Route objects"):
        RoutingRules(GROUPS, routes=routes)


@pytest.mark.parametrize(
    "bounds",
    [("7",), None, (1.5, 3), (True, 3), "730"],
    ids=["str", "None", "float", "bool", "text"],
)
def test_rep_list_age_bounds_are_whole_days(
    funnel: Funnel, clock: ManualClock, bounds: Any
) -> None:
    """``by_age(("7",))`` and ``by_age(None)`` raised TypeError; ``by_age((1.5, 3))``
    filed a two-day-old item under "2.5-3 days"."""
    funnel.qualify(funnel.capture(Lead(email="a@acme.example.com")), force=True)
    clock.advance(days=2)
    rep_list = funnel.rep_list("never_booked")
    assert rep_list.by_age((1, 3)) == {
        "0-1 days": [],
        "2-3 days": list(rep_list.items),
        "over 3 days": [],
    }
    with pytest.raises(InvalidArgumentError, match="whole days"):
        rep_list.by_age(bounds)


@pytest.mark.parametrize("filters", [{"source": 3}, {"owner": b"hal"}], ids=["source", "owner"])
def test_rep_list_text_filters_of_another_type_are_refused(
    funnel: Funnel, filters: dict[str, Any]
) -> None:
    """``rep_list(source=3)`` answered an empty list, as no list method does."""
    with pytest.raises(InvalidArgumentError, match="a str"):
        funnel.rep_list("never_booked", **filters)
