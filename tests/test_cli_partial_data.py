"""The command line on people with partial data: a badge scan without e-mail or phone
imported from a CSV is qualified like anyone else, and never stops the run."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main

CSV = (
    "first_name,last_name,email,phone,company,title,industry,country\n"
    "Ann,Badge,,,Booth Co,CEO,IT Services,US\n"  # a badge scan: no e-mail, no phone
    "Ben,Mail,ben@after.example.com,,After Co,CEO,IT Services,US\n"
    "Cy,Badge,,,Booth Co,Owner,IT Services,US\n"  # the same company, still no key
)
RULES = """
[[profiles]]
name = "it"
rules = [{ rule = "niche", industries = ["IT Services"] }]
"""


def test_badge_scans_are_imported_and_qualified_with_the_rest(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    (tmp_path / "in.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    runner = CliRunner()
    imported = runner.invoke(main, ["import", str(tmp_path / "in.csv"), "--db", db])
    assert imported.exit_code == 0, imported.output
    qualified = runner.invoke(
        main, ["qualify", "--rules", str(tmp_path / "rules.toml"), "--db", db]
    )
    assert qualified.exit_code == 0, qualified.output
    funnel = Funnel(SqlRepository(db))
    assert sorted((x.last_name, x.status.value) for x in funnel.leads()) == [
        ("Badge", "qualified"),
        ("Badge", "qualified"),
        ("Mail", "qualified"),
    ]
