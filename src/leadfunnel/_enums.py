"""The states and vocabularies of the funnel, as ``str`` enums.

The values are the public contract: they are what is stored, exported and compared.
Every method of the library accepts a member or its string value.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Channel",
    "ContactType",
    "Interest",
    "LeadStatus",
    "LostReason",
    "Outcome",
    "Stage",
    "Tier",
]


class LeadStatus(StrEnum):
    """Where a lead stands on the list."""

    SUSPECT = "suspect"
    FARM_LIST = "farm_list"
    RAW = "raw"
    QUALIFIED = "qualified"
    UNQUALIFIED = "unqualified"
    CONVERTED = "converted"
    AVOID = "avoid"


class ContactType(StrEnum):
    """What kind of warm relationship a contact is."""

    PROSPECT = "prospect"
    CLIENT = "client"
    UNQUALIFIED = "unqualified"
    AVOID = "avoid"
    SUPPLIER = "supplier"
    PARTNER = "partner"
    OTHER = "other"


class Stage(StrEnum):
    """The sales stage of an opportunity."""

    APPOINTMENT_SET = "appointment_set"
    APPOINTMENT_SAT = "appointment_sat"
    PROPOSING = "proposing"
    CONTRACT_SENT = "contract_sent"
    WON = "won"
    LOST = "lost"


class LostReason(StrEnum):
    """Why an opportunity was lost."""

    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    NOT_SOLID = "not_solid"
    NO_DECISION = "no_decision"
    PRICE = "price"
    COMPETITOR = "competitor"
    UNQUALIFIED = "unqualified"
    AVOID = "avoid"
    OTHER = "other"


class Interest(StrEnum):
    """How much interest a lead has shown."""

    NONE = "none"
    SLIGHT = "slight"
    HIGH = "high"


class Channel(StrEnum):
    """A way of reaching a person."""

    CALL = "call"
    EMAIL = "email"
    DIRECT_MAIL = "direct_mail"
    MEETING = "meeting"
    SOCIAL = "social"
    SMS = "sms"


class Outcome(StrEnum):
    """What came of one touch."""

    NO_ANSWER = "no_answer"
    LEFT_MESSAGE = "left_message"
    CONNECTED = "connected"
    REPLIED = "replied"
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    OPTED_OUT = "opted_out"
    BOUNCED = "bounced"


class Tier(StrEnum):
    """How hot a judged lead is."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"
