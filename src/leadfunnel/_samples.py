"""Sample people and companies: the demo's funnel and the test strategies draw on these.

The names are a mix of origins on purpose; the strategies add a few with accents and
apostrophes to what they draw.
"""

from __future__ import annotations

__all__ = ["COMPANY_WORDS", "FIRST_NAMES", "LAST_NAMES"]

FIRST_NAMES: tuple[str, ...] = (
    "Pat",
    "Sam",
    "Alex",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Avery",
    "Quinn",
    "Drew",
    "Robin",
    "Dana",
    "Lee",
    "Kim",
    "Chris",
    "Terry",
    "Jesse",
    "Cameron",
    "Rowan",
    "Emerson",
    "Hayden",
    "Parker",
    "Reese",
    "Skyler",
    "Devon",
)
LAST_NAMES: tuple[str, ...] = (
    "Rivera",
    "Nguyen",
    "Smith",
    "Patel",
    "Garcia",
    "Kowalski",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Tanaka",
    "Dubois",
    "Silva",
    "Cohen",
    "Murphy",
    "Larsen",
    "Novak",
    "Haddad",
    "Fischer",
    "Moreau",
    "Brennan",
    "Castillo",
    "Ivanova",
    "Lindqvist",
    "Mensah",
)
COMPANY_WORDS: tuple[str, ...] = (
    "Northwind",
    "Bluepeak",
    "Ironclad",
    "Brightline",
    "Summit",
    "Keystone",
    "Clearpath",
    "Redwood",
    "Harbor",
    "Granite",
    "Lakeside",
    "Pioneer",
    "Silverleaf",
    "Trident",
)
