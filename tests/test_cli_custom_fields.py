"""`leadfunnel import --lead-model`: columns named like the application's own fields
fill them, through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import run_leadfunnel
from leadfunnel import Funnel, Lead, SqlRepository

MODELS = """
from leadfunnel import Lead


class MyLead(Lead):
    endpoints: int | None = None
    it_provider: str | None = None
"""


def test_import_fills_custom_fields_from_columns_named_like_them(tmp_path: Path) -> None:
    (tmp_path / "mycrm_models.py").write_text(MODELS, encoding="utf-8")
    (tmp_path / "leads.csv").write_text(
        "FirstName,LastName,Email,Company,endpoints,it_provider,Status,IsConverted,Mood\n"
        "Pat,Rivera,pat@acme.example.com,Acme,40,Globex,Open - Not Contacted,false,happy\n"
        "Sam,Chen,sam@beta.example.com,Beta,many,,Open - Not Contacted,false,\n"
        "Cora,Conv,cora@conv.example.com,Conv,12,Initech,Closed - Converted,true,\n",
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    done = run_leadfunnel(
        tmp_path, "import", "leads.csv", "--db", db, "--lead-model", "mycrm_models:MyLead",
        "--rejects", "rejects.csv",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 added (1 as contacts), 0 duplicates, 0 avoided, 1 rejected")
    assert "Columns not imported: Mood\n" in done.stdout  # the custom ones were used
    assert "many" in (tmp_path / "rejects.csv").read_text(encoding="utf-8")

    sys.path.insert(0, str(tmp_path))
    try:
        from mycrm_models import MyLead  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    funnel = Funnel(SqlRepository(db), lead_model=MyLead)
    (pat,) = funnel.leads()
    assert isinstance(pat, Lead)
    assert (pat.endpoints, pat.it_provider) == (40, "Globex")  # type: ignore[attr-defined]
    assert [c.email for c in funnel.contacts()] == ["cora@conv.example.com"]


def test_qualify_judges_custom_fields_with_the_lead_model(tmp_path: Path) -> None:
    """`leadfunnel qualify --lead-model`: a field rule on the application's own field."""
    (tmp_path / "mycrm_models.py").write_text(MODELS, encoding="utf-8")
    (tmp_path / "rules.toml").write_text(
        '[[profiles]]\nname = "fleet"\n'
        'rules = [{ rule = "field", field = "endpoints", min = 20, hard = true }]\n',
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    sys.path.insert(0, str(tmp_path))
    try:
        from mycrm_models import MyLead
    finally:
        sys.path.remove(str(tmp_path))
    funnel = Funnel(SqlRepository(db), lead_model=MyLead)
    big = funnel.add(MyLead(email="big@fleet.example.com", endpoints=40, status="raw"))
    small = funnel.add(MyLead(email="small@fleet.example.com", endpoints=5, status="raw"))
    funnel.repository.close()

    def qualify(*more: str) -> subprocess.CompletedProcess[str]:
        return run_leadfunnel(tmp_path, "qualify", "--rules", "rules.toml", "--db", db, *more)

    without = qualify()  # plain Lead has no such field: refused before any lead
    assert without.returncode == 2
    assert "names 'endpoints', which Lead has no field" in without.stderr
    done = qualify("--lead-model", "mycrm_models:MyLead")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 qualified, 1 disqualified")
    funnel = Funnel(SqlRepository(db), lead_model=MyLead)
    assert funnel.get_lead(big.id).status == "qualified"
    assert funnel.get_lead(small.id).status == "unqualified"


REGISTERING = (
    MODELS
    + """

from leadfunnel.rules import BaseRule, Verdict, register_rule


class BigFleet(BaseRule):
    name = "big_fleet"

    def evaluate(self, lead):
        if lead.endpoints is None:
            return Verdict.unknown("no endpoints", missing=["endpoints"])
        return Verdict.passed("big") if lead.endpoints >= 20 else Verdict.failed("small")


register_rule("big_fleet", BigFleet)
"""
)


def test_qualify_sees_the_rules_the_lead_models_module_registers(tmp_path: Path) -> None:
    """The --lead-model module is imported before the rules file is read: the rules it
    registers with register_rule (not only entry points) can be named there."""
    (tmp_path / "fleet_models.py").write_text(REGISTERING, encoding="utf-8")
    (tmp_path / "rules.toml").write_text(
        '[[profiles]]\nname = "fleet"\nrules = [{ rule = "big_fleet", hard = true }]\n',
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    funnel = Funnel(SqlRepository(db))
    funnel.add(Lead(email="x@fleet.example.com", status="raw"))
    funnel.repository.close()
    done = run_leadfunnel(
        tmp_path, "qualify", "--rules", "rules.toml", "--db", db,
        "--lead-model", "fleet_models:MyLead",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 qualified, 0 disqualified, 1 waiting")


FRAGILE = (
    MODELS
    + """

from leadfunnel.rules import BaseRule, Verdict, register_rule


class Fragile(BaseRule):
    name = "fragile"

    def evaluate(self, lead):
        return Verdict.passed("big") if 100 // lead.endpoints > 1 else Verdict.failed("small")


register_rule("fragile", Fragile)
"""
)


def test_qualify_judges_every_other_lead_when_a_rule_fails_on_some(tmp_path: Path) -> None:
    """A rule raising on a few leads leaves them raw and says so (status 2); every other
    lead is judged and stored, and the next run after the fix judges those few."""
    (tmp_path / "fragile_models.py").write_text(FRAGILE, encoding="utf-8")
    (tmp_path / "rules.toml").write_text(
        '[[profiles]]\nname = "fleet"\nrules = [{ rule = "fragile", hard = true }]\n',
        encoding="utf-8",
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from fragile_models import MyLead  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    funnel = Funnel(SqlRepository(db), lead_model=MyLead)
    endpoints = [10, 0, 20, 0, 0, 0, 0, 0, 0, 5]  # 100 // 0 raises on seven of them
    leads = [
        funnel.add(MyLead(email=f"x{i}@fleet.example.com", status="raw", endpoints=n))
        for i, n in enumerate(endpoints)
    ]
    funnel.repository.close()
    done = run_leadfunnel(
        tmp_path, "qualify", "--rules", "rules.toml", "--db", db,
        "--lead-model", "fragile_models:MyLead",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stdout.startswith("3 qualified, 0 disqualified, 0 waiting")
    assert "7 left raw (a rule, or your lead class, refused them)" in done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 6  # the first five failures, then the verdict
    assert all("rule 'fragile' of profile 'fleet' failed on lead" in line for line in lines[:5])
    assert "ZeroDivisionError" in lines[0]
    assert lines[-1].startswith(
        "leadfunnel: error: a rule or your lead class refused 7 leads (the first 5"
    )
    funnel = Funnel(SqlRepository(db), lead_model=MyLead)
    statuses = [funnel.get_lead(lead.id).status for lead in leads]
    assert statuses == ["qualified" if n else "raw" for n in endpoints]


def test_the_installed_command_finds_the_model_in_the_current_folder(tmp_path: Path) -> None:
    """`leadfunnel import ... --lead-model mycrm.models:MyLead`, run in the application's
    folder by the installed script (whose own path does not hold that folder), finds
    the package there, as `python -m` and uvicorn do."""
    package = tmp_path / "mycrm"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "models.py").write_text(MODELS, encoding="utf-8")
    (tmp_path / "leads.csv").write_text(
        "FirstName,Email,endpoints\nPat,pat@acme.example.com,40\n", encoding="utf-8"
    )
    script = Path(sys.executable).parent / "leadfunnel"
    done = subprocess.run(
        [str(script), "import", "leads.csv", "--db", "sqlite:///crm.db",
         "--lead-model", "mycrm.models:MyLead"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 added")
    exported = subprocess.run(
        [str(script), "export-person", "pat@acme.example.com", "--db", "sqlite:///crm.db"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert '"endpoints": 40' in exported.stdout  # stored, so exported without the model
