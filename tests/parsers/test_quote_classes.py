"""Quote stripping keeps the customer's words: our own examples of each class of reply."""

from __future__ import annotations

import pytest

from parsers.quotes import strip_reply

QUOTED = "\n> Please retry.\n"
HISTORY = "\n\nPlease retry with the new build.\n"


def test_answers_written_between_quoted_lines_are_kept() -> None:
    reply = ("Hi,\n\n> Which version do you run?\n4.2.1\n\n> Does it happen every time?\n"
             "Only after a restart.\n\nOn Mon, Dec 7, 2026 at 10:00 AM Support "
             "<s@example.com> wrote:\n> Which version do you run?\n")
    assert strip_reply(reply) == ("Hi,\n\n> Which version do you run?\n4.2.1\n\n"
                                  "> Does it happen every time?\nOnly after a restart.")


@pytest.mark.parametrize("attribution", [
    "On Mon, 7 Dec 2026 at 10:00, Support Team <support@example.com>\nwrote:",
    "On Mon, Dec 7, 2026 at 10:00 AM Support Team <\nsupport@example.com> wrote:",
    "Am 07.12.2026 um 10:00 schrieb Support Team\n<support@example.com>:",
    "Le 07/12/2026 à 10:00, Support a écrit\n<support@example.com> :",
    "Le lun. 7 déc. 2026 à 10:00, Support <support@example.com> a\u00a0écrit\u00a0:",
    "On Mon, Dec 7, 2026 at 10:00 AM support@example.com<mailto:support@example.com> "
    "<support@example.com<mailto:support@example.com>> wrote:",
])
def test_attributions_wrapped_localised_or_in_outlook_forms(attribution: str) -> None:
    assert strip_reply(f"Still broken.\n\n{attribution}{QUOTED}") == "Still broken."


@pytest.mark.parametrize("block", [
    "From: Support <support@example.com<mailto:support@example.com>>\n"
    "Sent: Monday, December 7, 2026 10:00 AM\nTo: Ivan <ivan@acme.example<mailto:"
    "ivan@acme.example>>\nSubject: RE: [SUP-000001] Export",
    "From: Support [mailto:support@example.com]\nSent: Monday, December 7, 2026 10:00 AM\n"
    "Subject: RE: Export",
    "De : Support <support@example.com>\nEnvoyé : lundi 7 décembre 2026 10:00\n"
    "À : Ivan <ivan@acme.example>\nObjet : RE: Export",
    "Von: Support <support@example.com>\nGesendet: Montag, 7. Dezember 2026 10:00\n"
    "An: Ivan\nBetreff: AW: Export",
    "От: Support <support@example.com>\nОтправлено: 7 декабря 2026 г. 10:00\nКому: Ivan\n"
    "Тема: RE: Export",
    "De: Support <support@example.com>\nEnviado el: lunes, 7 de diciembre de 2026 10:00\n"
    "Para: Ivan\nAsunto: RE: Export",
    "Från: Support <support@example.com>\nSkickat: den 7 december 2026 10:00\nTill: Ivan\n"
    "Ämne: SV: Export",
    "Kimden: Support <support@example.com>\nGönderildi: 7 Aralık 2026 Pazartesi 10:00\n"
    "Kime: Ivan\nKonu: YNT: Export",
])
def test_localised_outlook_header_blocks(block: str) -> None:
    assert strip_reply(f"Still broken.\n\n{block}{HISTORY}") == "Still broken."


@pytest.mark.parametrize("marker", [
    "---- On Mon, 07 Dec 2026 10:00:00 +0300 Support <support@example.com> wrote ----",
    "---- On Mon, 07 Dec 2026 10:00:00 +0300 support@example.com wrote ----",
])
def test_dashed_attribution_lines(marker: str) -> None:
    assert strip_reply(f"Still broken.\n\n{marker}{HISTORY}") == "Still broken."


@pytest.mark.parametrize("signature", [
    "Envoyé de mon iPad", "Von meinem iPhone gesendet", "Отправлено с iPhone",
    "Enviado desde mi iPad", "Inviato da iPhone", "Enviado do meu iPhone",
    "Verstuurd vanaf mijn iPhone", "Wysłane z mojego iPhone'a", "Skickat från min iPhone",
    "Sendt fra min iPhone", "iPhone'umdan gönderildi", "Odesláno z iPhonu",
])
def test_mobile_signatures_in_other_languages(signature: str) -> None:
    assert strip_reply(f"The export still fails.\n\n{signature}\n") == "The export still fails."


def test_ordinary_text_with_a_header_word_is_kept() -> None:
    """A lone "Till:" or "Konu:" line is text: only a block of header lines is history."""
    text = "Konu: the export of reports\nTill: tomorrow please."
    assert strip_reply(text) == text
