"""Unit tests of strip_reply: quote styles, attributions, header blocks and signatures."""

from __future__ import annotations

from pathlib import Path

from parsers.quotes import reply_text_of_file, strip_reply


def test_gt_quotes_removed() -> None:
    """Trailing ">" quoted lines are removed."""
    assert strip_reply("Thanks, fixed.\n\n> did you fix it?\n> please\n") == "Thanks, fixed."


def test_on_wrote_single_and_multiline() -> None:
    """"On … wrote:" attributions, also wrapped over lines, cut the history."""
    one = "Works now.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Ann <a@x.org> wrote:\n> broken\n"
    two = "Works now.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Ann Lee <\na@x.org> wrote:\n\n> old\n"
    assert strip_reply(one) == "Works now."
    assert strip_reply(two) == "Works now."


def test_russian_attributions() -> None:
    """Russian "пишет:" and "написал(а):" attributions cut the history."""
    a = ("Спасибо, заработало.\n\nпн, 23 нояб. 2026 г. в 10:00, Иван <x@y.ru> пишет:\n"
         "> не работает\n")
    b = "Спасибо!\n\n23.11.2026 10:00, Иван Петров написал(а):\n> старый текст\n"
    assert strip_reply(a) == "Спасибо, заработало."
    assert strip_reply(b) == "Спасибо!"


def test_outlook_header_blocks() -> None:
    """English and Russian Outlook From/Sent/To/Subject blocks cut the history."""
    en = "See attached.\n\nFrom: Bob\nSent: Monday\nTo: Support\nSubject: Issue\n\nold text\n"
    ru = ("Смотрите вложение.\n\nОт: Иван\nОтправлено: 23 ноября\nКому: Поддержка\n"
          "Тема: Сбой\n\nстарое\n")
    assert strip_reply(en) == "See attached."
    assert strip_reply(ru) == "Смотрите вложение."


def test_original_message_marker() -> None:
    """"-----Original Message-----" cuts the history."""
    text = "Done.\n\n-----Original Message-----\nFrom: x\nplease do it\n"
    assert strip_reply(text) == "Done."


def test_dash_dash_signature() -> None:
    """A "-- " signature separator and what follows are removed."""
    assert strip_reply("Please reset my password.\n\n-- \nAnn Lee\nACME Corp\n") == (
        "Please reset my password.")


def test_signoff_blocks() -> None:
    """"С уважением" / "Best regards" followed by a signature block is removed."""
    ru = "Не работает VPN.\n\nС уважением,\nИван Петров\nинженер, ООО Ромашка\n+7 900 000-00-00\n"
    en = "VPN is down.\n\nBest regards,\nAnn Lee\nIT manager\nACME\n"
    assert strip_reply(ru) == "Не работает VPN."
    assert strip_reply(en) == "VPN is down."


def test_signoff_with_only_a_name_is_kept() -> None:
    """A short "Thanks,\\nAlex" closing stays: it is part of what the sender wrote."""
    assert strip_reply("Hi. I am fine.\n\nThanks,\nAlex") == "Hi. I am fine.\n\nThanks,\nAlex"


def test_mobile_signature() -> None:
    """"Sent from my iPhone" lines are removed."""
    assert strip_reply("Call me.\n\nSent from my iPhone\n") == "Call me."


def test_bottom_posted_reply() -> None:
    """A reply written under the quote is kept, the quote dropped."""
    text = "On Mon, Jan 1, 2026, Bob <b@x.org> wrote:\n> question?\n\nAnswer below the quote.\n"
    assert strip_reply(text) == "Answer below the quote."


def test_plain_text_unchanged() -> None:
    """Text without quotes or signatures is returned as is (trimmed)."""
    assert strip_reply("  \nLine one\n\nLine two\n") == "Line one\n\nLine two"
    assert strip_reply("") == ""


def test_reply_text_of_files(tmp_path: Path) -> None:
    """reply_text_of_file handles .txt, .html and .eml inputs."""
    (tmp_path / "a.txt").write_text("Hi\n\n> quoted\n", encoding="utf-8")
    (tmp_path / "a.html").write_text("<p>Hi</p><blockquote>On Mon, Bob wrote:</blockquote>",
                                     encoding="utf-8")
    (tmp_path / "a.eml").write_bytes(b"From: a@x.org\r\n\r\nHi\r\n\r\n> quoted\r\n")
    assert reply_text_of_file(tmp_path / "a.txt") == "Hi"
    assert reply_text_of_file(tmp_path / "a.html") == "Hi"
    assert reply_text_of_file(tmp_path / "a.eml") == "Hi"
