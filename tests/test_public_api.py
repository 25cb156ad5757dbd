"""The public surface: what ``leadfunnel`` exports is exactly what it means to."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest

import leadfunnel
import leadfunnel.rules
import leadfunnel.storage
import leadfunnel.testing


def public_names(module: types.ModuleType) -> set[str]:
    """Names a user can reach without an underscore, imports from elsewhere aside: the
    package re-exports from its private modules; a submodule exports its own."""
    names = set()
    for name in dir(module):
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        home = getattr(value, "__module__", None)
        if home is not None and not (
            home == module.__name__ or (module is leadfunnel and home.startswith("leadfunnel."))
        ):
            continue  # imported for its own use: typing helpers, a sibling's names
        names.add(name)
    return names


@pytest.mark.parametrize(
    "module", [leadfunnel, leadfunnel.testing, leadfunnel.rules, leadfunnel.storage]
)
def test_all_is_sorted_complete_and_resolvable(module: types.ModuleType) -> None:
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    for name in exported:
        assert getattr(module, name) is not None, name
    missing = public_names(module) - set(exported) - {"annotations", "TYPE_CHECKING"}
    assert not missing, f"public but not in __all__: {sorted(missing)}"


def test_every_public_class_and_function_is_documented() -> None:
    for name in leadfunnel.__all__:
        value = getattr(leadfunnel, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_every_error_is_a_leadfunnel_error() -> None:
    errors = [getattr(leadfunnel, name) for name in leadfunnel.__all__ if name.endswith("Error")]
    assert len(errors) >= 8
    for error in errors:
        assert issubclass(error, leadfunnel.LeadFunnelError), error


def test_importing_leadfunnel_leaves_sqlalchemy_for_later() -> None:
    script = (
        "import sys, leadfunnel\n"
        "assert 'sqlalchemy' not in sys.modules\n"
        "funnel = leadfunnel.Funnel()\n"
        "assert 'sqlalchemy' not in sys.modules\n"
        "assert leadfunnel.SqlRepository.__name__ == 'SqlRepository'\n"
        "assert 'sqlalchemy' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        leadfunnel.Nope  # type: ignore[attr-defined,unused-ignore]  # noqa: B018


def _public_callables() -> list[tuple[str, object]]:
    """Every public function and public method of a public class of ``leadfunnel``,
    ``leadfunnel.rules`` and ``leadfunnel.storage`` (pydantic's deprecated ``copy`` of
    the models left out: its hints are pydantic's)."""
    found: list[tuple[str, object]] = []
    for module in (leadfunnel, leadfunnel.rules, leadfunnel.storage):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                found.append((f"{module.__name__}.{name}", obj))
            elif inspect.isclass(obj):
                found += [
                    (f"{module.__name__}.{name}.{member}", function)
                    for member, function in inspect.getmembers(obj, inspect.isfunction)
                    if (member == "__init__" or not member.startswith("_")) and member != "copy"
                ]
    return found


@pytest.mark.parametrize(
    ("name", "function"), [pytest.param(n, f, id=n) for n, f in _public_callables()]
)
def test_every_public_signature_resolves_at_run_time(name: str, function: object) -> None:
    """``typing.get_type_hints`` reads every public signature: FastAPI given a method
    as an endpoint, or pydantic's ``validate_call``, does. ``Funnel.due`` raised
    ``NameError: FollowUp`` (imported for type checkers only)."""
    import typing

    typing.get_type_hints(function)
