"""DESIGN 13: exceptions never carry personal data. A duplicate or an avoid-listed
person is refused with an error that names the kind of key and the record holding it,
never the e-mail or phone itself (``key`` keeps it for the program that caught it)."""

from __future__ import annotations

import logging
import traceback

import pytest

from leadfunnel import AvoidListedError, DuplicateError, Funnel, Lead

EMAIL, PHONE = "jane.personal@example.com", "+14155550123"


def _rendered(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def test_a_duplicate_names_the_kind_of_key_and_the_holder_only(funnel: Funnel) -> None:
    stored = funnel.add(Lead(first_name="Jane", email=EMAIL, phone=PHONE))
    with pytest.raises(DuplicateError) as caught:
        funnel.add(Lead(email=EMAIL.upper()))
    assert "same e-mail already exists" in str(caught.value)
    assert str(stored.id) in str(caught.value)
    assert caught.value.key == f"email:{EMAIL}"
    assert EMAIL not in _rendered(caught.value).lower()
    with pytest.raises(DuplicateError) as by_phone:
        funnel.add(Lead(phone=PHONE))
    assert "same phone" in str(by_phone.value)
    assert PHONE not in _rendered(by_phone.value)
    assert "4155550123" not in str(by_phone.value)


def test_an_avoid_listed_or_erased_person_is_refused_without_echoing_the_key(
    funnel: Funnel, caplog: pytest.LogCaptureFixture
) -> None:
    avoided = funnel.add(Lead(email=EMAIL))
    funnel.avoid(avoided)
    erased = funnel.add(Lead(phone=PHONE))
    funnel.erase(erased)
    for again in (Lead(email=EMAIL), Lead(phone=PHONE)):
        with pytest.raises(AvoidListedError) as caught:
            funnel.capture(again)
        logging.getLogger("app").exception("refused", exc_info=caught.value)
        assert "matches avoid-listed record" in str(caught.value)
    assert EMAIL not in caplog.text
    assert PHONE not in caplog.text
