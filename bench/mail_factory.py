"""Realistic support mail for the benchmarks: Russian and English, plain, HTML and MIME."""

from __future__ import annotations

import base64
import html
import quopri
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr

# The address the generated customers write to, and the daemons under test accept.
SUPPORT_ADDRESS = "support@example.com"


RU_FIRST = [("Иван", "ivan"), ("Мария", "maria"), ("Алексей", "alexey"), ("Ольга", "olga"),
            ("Сергей", "sergey"), ("Наталья", "natalia"), ("Дмитрий", "dmitry"),
            ("Елена", "elena"), ("Андрей", "andrey"), ("Татьяна", "tatiana"),
            ("Пётр", "petr"), ("Юлия", "yulia"), ("Михаил", "mikhail"), ("Анна", "anna")]
RU_LAST = [("Петров", "petrov"), ("Смирнов", "smirnov"), ("Кузнецов", "kuznetsov"),
           ("Соколов", "sokolov"), ("Попов", "popov"), ("Лебедев", "lebedev"),
           ("Козлов", "kozlov"), ("Новиков", "novikov"), ("Морозов", "morozov"),
           ("Волков", "volkov"), ("Фёдоров", "fedorov"), ("Егоров", "egorov")]
EN_FIRST = ["John", "Mary", "Peter", "Linda", "James", "Susan", "Robert", "Karen", "David",
            "Emma", "Thomas", "Olivia", "Daniel", "Sophie"]
EN_LAST = ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clark", "Walker", "Hall",
           "Young", "King", "Wright", "Green"]
DOMAINS = ["romashka.example", "vektor-telecom.example", "acme.example", "globex.example",
           "severstal-it.example", "initech.example", "mail.example.ru", "umbrella.example",
           "zavod-5.example", "bank-kredit.example", "logistika.example", "hooli.example",
           "tyrell.example", "stark.example", "gorod-online.example", "pharma-plus.example"]

RU_SUBJECTS = [
    "Не работает отправка сообщений", "Обрываются звонки через {n} секунд",
    "Ошибка {code} при входе в личный кабинет", "Медленно открываются отчёты",
    "Просьба подключить нового сотрудника", "Вопрос по настройке резервного копирования",
    "Неверная сумма в счёте за {month}", "Предложение по доработке выгрузки",
    "Срочно: недоступен сервер {host}", "Пропал доступ к VPN после перезагрузки",
    "Консультация по тарифу", "Не приходят SMS-уведомления клиентам",
    "Сбой синхронизации с 1С", "Заявка на смену пароля администратора",
]
EN_SUBJECTS = [
    "Messages are not delivered", "Calls drop after {n} seconds",
    "Error {code} when logging in", "Reports take minutes to open",
    "Please add a new user to the portal", "Question about backup settings",
    "Wrong amount on the {month} invoice", "Feature request: CSV export of tickets",
    "URGENT: server {host} is down", "VPN access lost after router reboot",
    "How do I configure SSO?", "SMS notifications stopped", "Sync with CRM fails",
]
RU_SENTENCES = [
    "Здравствуйте, у нас перестала работать отправка сообщений с сервера {host}.",
    "После обновления до версии {ver} пользователи не могут войти в систему.",
    "Просим проверить, почему звонки обрываются через {n} секунд после соединения.",
    "Ошибка повторяется каждые {n} минут, в журнале видно сообщение о тайм-ауте.",
    "Прикладываю снимок экрана и выгрузку журнала за последние сутки.",
    "Это влияет на работу {n} сотрудников нашего отдела продаж.",
    "Прошу подключить нового пользователя {name} к порталу поддержки.",
    "Подскажите, пожалуйста, как настроить резервное копирование базы данных.",
    "Счёт за {month} пришёл с неверной суммой, просим исправить.",
    "Хотели бы предложить доработку: выгрузку отчётов в формате Excel.",
    "Сервер отвечает очень медленно, страницы открываются больше минуты.",
    "Вчера вечером после перезагрузки маршрутизатора пропал доступ к VPN.",
    "Мы уже перезапускали службу, но проблема не исчезла.",
    "Срочно нужна помощь, не работает приём платежей на сайте.",
    "Адрес сервера {ip}, код ошибки {code}, время первого сбоя {time}.",
    "Клиенты жалуются, что уведомления приходят с опозданием на несколько часов.",
    "Проверьте, пожалуйста, настройки маршрутизации на вашей стороне.",
    "Заранее спасибо за оперативный ответ.",
    "Если нужна дополнительная информация, звоните по телефону +7 495 {phone}.",
    "Проблема наблюдается только у части абонентов, примерно у {n} человек.",
]
EN_SENTENCES = [
    "Hello, outgoing messages from server {host} stopped being delivered this morning.",
    "Since the upgrade to version {ver} our users cannot sign in.",
    "Please check why calls drop about {n} seconds after they are connected.",
    "The error repeats every {n} minutes and the log shows a timeout.",
    "I attach a screenshot and the log export for the last day.",
    "This affects {n} people in our sales department.",
    "Please add the new user {name} to the support portal.",
    "Could you tell us how to configure database backups?",
    "The invoice for {month} shows a wrong amount, please correct it.",
    "We would like to suggest an improvement: exporting reports to Excel.",
    "The server responds very slowly, pages take more than a minute to open.",
    "After the router was rebooted last night we lost VPN access.",
    "We have already restarted the service but the problem persists.",
    "We urgently need help, card payments on the web site are failing.",
    "Server address {ip}, error code {code}, first failure at {time}.",
    "Customers complain that notifications arrive several hours late.",
    "Please check the routing settings on your side.",
    "Thanks in advance for a quick answer.",
    "If you need more details, call us at +1 555 {phone}.",
    "Only some subscribers are affected, roughly {n} of them.",
]
RU_MONTHS = ["январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август"]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August"]
MAILERS = ["Microsoft Outlook 16.0", "Mozilla Thunderbird 115.5.0", "Apple Mail (2.3731)",
           "Roundcube Webmail/1.6.5", "Яндекс.Почта", "The Bat! (v10.5.3) Professional", None]


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _header_block(headers: Sequence[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")


@dataclass(frozen=True)
class BenchMessage:
    message_id: str  # without angle brackets
    sender: str
    data: bytes
    eight_bit: bool


class MessageFactory:
    """Deterministic, realistic support e-mail: languages, charsets, HTML, attachments."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.base_date = datetime(2026, 11, 25, 9, 0, tzinfo=timezone(timedelta(hours=3)))
        self.senders = [self._person() for _ in range(400)]

    def _person(self) -> tuple[str, str, str]:
        """(display name, address, language)."""
        rng = self.rng
        domain = rng.choice(DOMAINS)
        if rng.random() < 0.6:
            (first, first_l), (last, last_l) = rng.choice(RU_FIRST), rng.choice(RU_LAST)
            style = rng.randrange(3)
            local = [f"{first_l}.{last_l}", f"{first_l[0]}.{last_l}",
                     f"{last_l}{rng.randrange(99)}"]
            return f"{first} {last}", f"{local[style]}@{domain}", "ru"
        first_e, last_e = rng.choice(EN_FIRST), rng.choice(EN_LAST)
        return f"{first_e} {last_e}", f"{first_e.lower()}.{last_e.lower()}@{domain}", "en"

    def _fill(self, template: str, language: str) -> str:
        rng = self.rng
        months = RU_MONTHS if language == "ru" else EN_MONTHS
        return template.format(
            n=rng.randrange(2, 500), host=f"srv-{rng.randrange(1, 40):02d}.local",
            ver=f"{rng.randrange(1, 9)}.{rng.randrange(20)}.{rng.randrange(100)}",
            code=f"E{rng.randrange(100, 9999)}", month=rng.choice(months),
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            time=f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
            phone=f"{rng.randrange(100, 999)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}",
            name=rng.choice(RU_FIRST)[0] if language == "ru" else rng.choice(EN_FIRST))

    def _paragraphs(self, language: str, target_chars: int) -> list[str]:
        sentences = RU_SENTENCES if language == "ru" else EN_SENTENCES
        paragraphs: list[str] = []
        total = 0
        while total < target_chars:
            paragraph = " ".join(self._fill(self.rng.choice(sentences), language)
                                 for _ in range(self.rng.randrange(2, 7)))
            paragraphs.append(paragraph)
            total += len(paragraph) + 2
        return paragraphs

    def _text(self, paragraphs: list[str], name: str, language: str) -> str:
        greeting = "Добрый день!" if language == "ru" else "Hello,"
        closing = "С уважением," if language == "ru" else "Best regards,"
        lines = [greeting, "", *(_wrap(p) + "\n" for p in paragraphs), "--", closing, name]
        if self.rng.random() < 0.2:  # some quoted history, as mail clients add
            lines += ["", "> " + _wrap(self._fill(self.rng.choice(
                RU_SENTENCES if language == "ru" else EN_SENTENCES), language)).replace(
                    "\n", "\n> ")]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _html(paragraphs: list[str], name: str) -> str:
        body = "".join(f'<p style="margin:0 0 8px 0">{html.escape(p)}</p>\n' for p in paragraphs)
        return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>"
                f"<body style=\"font-family:Calibri,Arial\">\n{body}"
                f"<p>--<br><b>{html.escape(name)}</b></p>\n</body></html>\n")

    def _text_part(self, text: str, subtype: str, charset: str) -> tuple[bytes, bool]:
        data = text.encode(charset)
        roll = self.rng.random()
        if charset == "utf-8" and data.isascii():
            cte, body = "7bit", _crlf(data)
        elif roll < 0.4:
            cte, body = "quoted-printable", _crlf(quopri.encodestring(data))
        elif roll < 0.75:
            cte, body = "base64", _crlf(base64.encodebytes(data))
        else:
            cte, body = "8bit", _crlf(data)
        head = _header_block([("Content-Type", f'text/{subtype}; charset="{charset}"'),
                              ("Content-Transfer-Encoding", cte)])
        return head + b"\r\n" + body, cte == "8bit"

    def _attachment(self, size: int, index: int) -> bytes:
        rng = self.rng
        kind = rng.choice(["pdf", "png", "png", "log"])
        if kind == "pdf":
            data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(size)
            ctype, filename = "application/pdf", f"report_{index}.pdf"
        elif kind == "png":
            data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(size)
            ctype, filename = "image/png", f"screenshot_{index}.png"
        else:
            data = rng.randbytes(size)
            ctype, filename = "application/octet-stream", f"trace_{index}.bin"
        head = _header_block([("Content-Type", f'{ctype}; name="{filename}"'),
                              ("Content-Disposition", f'attachment; filename="{filename}"'),
                              ("Content-Transfer-Encoding", "base64")])
        return head + b"\r\n" + _crlf(base64.encodebytes(data))

    def make(self, index: int, tag: str) -> BenchMessage:
        rng = self.rng
        name, address, language = rng.choice(self.senders)
        charset = "utf-8"
        if language == "ru":
            charset = rng.choices(["utf-8", "koi8-r", "windows-1251"], [0.6, 0.2, 0.2])[0]
        # Sizes: most mail is a few KB of text; a share carries screenshots or logs.
        with_attachment = rng.random() < 0.35
        if with_attachment:
            total = int(2 ** rng.uniform(13, 17.6))  # 8 KB .. ~200 KB
            text_chars = int(2 ** rng.uniform(8.5, 11.5))
        else:
            total = 0
            text_chars = int(2 ** rng.uniform(9.2, 13.3))  # ~0.6 .. 10 K characters
        paragraphs = self._paragraphs(language, text_chars)
        text = self._text(paragraphs, name, language)
        eight_bit = False
        alternative = rng.random() < 0.35
        if alternative:
            plain, bit_a = self._text_part(text, "plain", charset)
            rich, bit_b = self._text_part(self._html(paragraphs, name), "html", charset)
            eight_bit = bit_a or bit_b
            boundary = f"=_alt_{index}_{rng.randrange(1 << 40):x}"
            body_part = _multipart("alternative", boundary, [plain, rich])
        else:
            body_part, eight_bit = self._text_part(text, "plain", charset)
        if with_attachment:
            parts = [body_part]
            remaining = max(1024, total - len(body_part))
            count = 1 if rng.random() < 0.75 else 2
            for n in range(count):
                parts.append(self._attachment(int(remaining * 3 / 4 / count), n + 1))
            boundary = f"=_mix_{index}_{rng.randrange(1 << 40):x}"
            body_part = _multipart("mixed", boundary, parts)

        subject = self._fill(rng.choice(RU_SUBJECTS if language == "ru" else EN_SUBJECTS),
                             language)
        domain = address.partition("@")[2]
        message_id = f"{tag}.{index}.{rng.randrange(1 << 48):012x}@{domain}"
        date = self.base_date + timedelta(seconds=index * 7)
        headers = [
            ("From", formataddr((name, address), charset=charset)),
            ("To", f"Support <{SUPPORT_ADDRESS}>"),
            ("Subject", _encode_subject(subject, charset)),
            ("Date", format_datetime(date)),
            ("Message-ID", f"<{message_id}>"),
            ("MIME-Version", "1.0"),
        ]
        mailer = rng.choice(MAILERS)
        if mailer is not None:
            headers.append(("X-Mailer", _encode_subject(mailer, "utf-8")))
        if rng.random() < 0.1:
            headers.append(("Cc", f"{rng.choice(EN_FIRST).lower()}@{domain}"))
        if rng.random() < 0.08:
            headers += [("X-Priority", "1 (Highest)"), ("Importance", "High")]
        data = _header_block(headers) + body_part
        return BenchMessage(message_id, address, data, eight_bit)


def _wrap(paragraph: str, width: int = 76) -> str:
    lines: list[str] = []
    line = ""
    for word in paragraph.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def _encode_subject(subject: str, charset: str) -> str:
    if subject.isascii():
        return subject
    return Header(subject, charset, maxlinelen=76).encode(linesep="\r\n")


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    head = _header_block([("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')])
    chunks = [head, b"\r\n", b"This is a multi-part message in MIME format.\r\n"]
    for part in parts:
        chunks += [f"\r\n--{boundary}\r\n".encode(), part]
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(chunks)


