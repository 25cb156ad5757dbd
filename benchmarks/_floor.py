"""Hand-written validation for the benchmarks' floors, with nothing of leadfunnel's.

A floor is the fastest honest way to do a benchmark's work by hand: it must reach the
same outcomes as leadfunnel (the same rows accepted, rejected and stored the same way),
so it checks what leadfunnel checks, with the libraries leadfunnel uses for it
(``email-validator`` for an unusual e-mail, ``phonenumbers`` for phones), and never
imports leadfunnel. The benchmarks assert that both sides agree on every count.
"""

from __future__ import annotations

import re

# The common e-mail (ASCII dot-atom local part, ASCII domain with an alphabetic TLD)
# by a pattern; anything else goes to email-validator, which has the final word.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def email_or_none(value: str) -> str | None:
    """The e-mail as stored (domain lower-cased), or None if it is not one."""
    match = _PLAIN_EMAIL.fullmatch(value)
    if (
        match is not None
        and len(value) <= 254
        and value.index("@") <= 64
        and match.group(1).rpartition(".")[2].lower() not in _SPECIAL_USE
    ):
        local, _, domain = value.partition("@")
        return f"{local}@{domain.lower()}"
    import email_validator

    try:
        return str(email_validator.validate_email(value, check_deliverability=False).normalized)
    except email_validator.EmailNotValidError:
        return None


def phone_or_none(value: str, region: str = "US") -> str | None:
    """The phone in E.164, or None if it cannot be one."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    # Possible in full (not a local number without its area code), and no extension.
    if (
        phonenumbers.is_possible_number_with_reason(number)
        != phonenumbers.ValidationResult.IS_POSSIBLE
        or number.extension
    ):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
