"""End-to-end SMTP benchmark of the Intake Gateway: throughput, ack latency and correctness."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import html
import json
import os
import platform
import quopri
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.event_loop import new_event_loop  # noqa: E402 (after the path is set)
from bench.smtp_client import Sent, Submitter  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
SUPPORT_ADDRESS = "support@example.com"
END_TO_END_TARGET = 400.0  # messages/s, from the issue
P99_TARGET_MS = 200.0


class BenchError(Exception):
    """A failure that ends the run with a clear message (timeout, daemon died, ...)."""


# --------------------------------------------------------------------------------------------
# Realistic messages
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The relay sink (runs as a subprocess: `smtp_throughput.py _sink`)
# --------------------------------------------------------------------------------------------

_IN_REPLY_TO = re.compile(rb"^in-reply-to:[ \t]*(?:\r?\n[ \t]+)?<([^>\s]+)>",
                          re.IGNORECASE | re.MULTILINE)


def run_sink() -> int:
    """Accept every message; print `monotonic<TAB>In-Reply-To<TAB>rcpt` per message."""
    from aiosmtpd.controller import Controller

    out = sys.stdout
    flushing: list[bool] = []

    def flush() -> None:
        flushing.clear()
        out.flush()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            arrived = time.monotonic()
            raw = envelope.original_content or envelope.content or b""
            head = raw.split(b"\r\n\r\n", 1)[0]
            match = _IN_REPLY_TO.search(head)
            reply_to = match.group(1).decode("ascii", "replace") if match else "-"
            rcpt = ",".join(envelope.rcpt_tos) or "-"
            out.write(f"{arrived:.6f}\t{reply_to}\t{rcpt}\n")
            # The arrival time is in the line: flushing every 10 ms instead of every line
            # changes no figure and spares the shared cores a write per acknowledgement.
            if not flushing:
                flushing.append(True)
                asyncio.get_running_loop().call_later(0.01, flush)
            return "250 2.0.0 OK"

    controller = None
    for _ in range(20):
        port = free_port()
        try:
            # On uvloop, as the daemon: the sink's share of the two cores is not the daemon's.
            controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                                    ready_timeout=10.0, loop=new_event_loop())
            controller.start()
            break
        except Exception:  # port taken between probe and bind: try another
            controller = None
    if controller is None:
        print("SINKERROR could not bind", flush=True)
        return 1
    out.write(f"READY {port}\n")
    out.flush()
    signal.signal(signal.SIGTERM, lambda *_: sys.stdin.close())
    with contextlib.suppress(Exception):
        for _line in sys.stdin:  # runs until the parent closes our stdin (or dies)
            pass
    controller.stop()
    return 0


# --------------------------------------------------------------------------------------------
# Processes the bench starts
# --------------------------------------------------------------------------------------------


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of PID and its live child processes (the daemon's workers),
    from Linux /proc; without PID, of this process and its threads."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return own + sum(cpu_seconds(child) for child in children)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ack:
    arrived: float
    recipient: str


class Sink:
    """The relay sink subprocess and a thread collecting what it reports."""

    def __init__(self, log_path: Path) -> None:
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "_sink"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        self.acks: dict[str, list[Ack]] = {}
        self.unmatched = 0
        self.count = 0
        self.last_arrival = time.monotonic()
        self._lock = threading.Lock()
        self.port = self._await_ready()
        self._reader = threading.Thread(target=self._read, name="sink-reader", daemon=True)
        self._reader.start()

    def _await_ready(self) -> int:
        assert self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(30)
        line = result[0] if result else ""
        if not line.startswith("READY "):
            raise BenchError(f"relay sink did not start (said {line.strip()!r})")
        return int(line.split()[1])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            arrived, reply_to, rcpt = float(parts[0]), parts[1], parts[2]
            with self._lock:
                self.count += 1
                self.last_arrival = arrived
                if reply_to == "-":
                    self.unmatched += 1
                else:
                    self.acks.setdefault(reply_to, []).append(Ack(arrived, rcpt))

    def received(self, ids: Sequence[str]) -> int:
        with self._lock:
            return sum(1 for i in ids if i in self.acks)

    def snapshot(self) -> tuple[int, float]:
        with self._lock:
            return self.count, self.last_arrival

    def first_ack(self, message_id: str) -> Ack | None:
        with self._lock:
            found = self.acks.get(message_id)
            return found[0] if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self._log.close()


class Daemon:
    """`intake-gateway --config CFG run` as a subprocess, stopped with SIGTERM."""

    def __init__(self, config: Path, smtp_port: int, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "intake-gateway"), "--config", str(config), "run"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=config.parent, start_new_session=True)
        self.port = smtp_port

    def wait_ready(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the daemon exited with {self.proc.returncode} before "
                                 f"listening:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                    conn.settimeout(5)
                    if conn.recv(512).startswith(b"220"):
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"the daemon did not answer on port {self.port} within {timeout:.0f} s"
                         f":\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the daemon died (exit {self.proc.returncode}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"bench: the daemon did not stop within {timeout:.0f} s; killing it",
                      file=sys.stderr)
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class Profiler:
    """Optional `py-spy record` on the daemon for the duration of the throughput phase."""

    def __init__(self, pid: int, output: Path, rate: int) -> None:
        py_spy = shutil.which("py-spy", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        if py_spy is None:
            raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
        fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(output.suffix, "raw")
        self.proc = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", fmt,
             "--threads", "--subprocesses", "--nonblocking", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def write_config(directory: Path, smtp_port: int, sink_port: int,
                 relay_connections: int | None, workers: int | None = None,
                 worker_niceness: int | None = None, event_loop: str | None = None) -> Path:
    config = directory / "gateway.toml"
    extra = f"connections = {relay_connections}\n" if relay_connections else ""
    config.write_text(f"""\
# Written by bench/smtp_throughput.py
[database]
url = "sqlite:///{directory / 'intake.db'}"

[smtp]
listen = "127.0.0.1:{smtp_port}"
recipients = ["{SUPPORT_ADDRESS}"]

[http]
listen = "127.0.0.1:{free_port()}"

[outgoing]
from = "Support <{SUPPORT_ADDRESS}>"
host = "127.0.0.1"
port = {sink_port}
security = "none"
maildir = "{directory / 'outgoing'}"
{extra}
[intake]
state_dir = "{directory / 'state'}"
# Registers around the clock, so a run at night measures acknowledgements like one by day.
unknown_customer_tier = "24/7"
{f"workers = {workers}" if workers is not None else ""}
{f"worker_niceness = {worker_niceness}" if worker_niceness is not None else ""}
{f'event_loop = "{event_loop}"' if event_loop is not None else ""}

[loops]
# 400 generated senders write 25+ messages each within minutes; the default limit (10 per
# 3 hours) would rightly stop acknowledging them.
sender_limit = 1000000

[logging]
level = "warning"
""", encoding="utf-8")
    return config


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


def wait_for_acks(sink: Sink, ids: list[str], daemon: Daemon, stall_timeout: float,
                  deadline_s: float, label: str, quiet: bool) -> None:
    """Until every id has an acknowledgement; raise if they stop arriving."""
    started = time.monotonic()
    last_count, last_progress, last_report = -1, time.monotonic(), 0.0
    while True:
        have = sink.received(ids)
        now = time.monotonic()
        if have >= len(ids):
            return
        daemon.check_alive()
        if have != last_count:
            last_count, last_progress = have, now
        elif now - last_progress > stall_timeout:
            raise BenchError(f"{label}: acknowledgements stopped arriving: {have}/{len(ids)} "
                             f"after {now - started:.0f} s, none for {stall_timeout:.0f} s.\n"
                             f"daemon log tail:\n{daemon.log_tail()}")
        if now - started > deadline_s:
            raise BenchError(f"{label}: only {have}/{len(ids)} acknowledgements within "
                             f"{deadline_s:.0f} s")
        if not quiet and now - last_report >= 5:
            print(f"  {label}: {have}/{len(ids)} acknowledgements", file=sys.stderr)
            last_report = now
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Phases and checks
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of VALUES."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def generate(factory: MessageFactory, count: int, tag: str) -> tuple[list[BenchMessage], float]:
    began = time.monotonic()
    messages = [factory.make(i, tag) for i in range(count)]
    return messages, time.monotonic() - began


def size_stats(messages: list[BenchMessage]) -> dict[str, float]:
    sizes = [len(m.data) for m in messages]
    return {"count": len(sizes), "mean_kb": statistics.fmean(sizes) / 1024,
            "median_kb": statistics.median(sizes) / 1024,
            "p95_kb": percentile(sizes, 95) / 1024, "max_kb": max(sizes) / 1024,
            "total_mb": sum(sizes) / 1024 / 1024}


def throughput_phase(args: argparse.Namespace, daemon: Daemon, sink: Sink,
                     messages: list[BenchMessage], stop: threading.Event,
                     profile: Path | None) -> tuple[dict[str, Any], list[Sent]]:
    profiler = Profiler(daemon.proc.pid, profile, args.profile_rate) if profile else None
    submitter = Submitter(daemon.port, messages, SUPPORT_ADDRESS, args.clients, args.per_session,
                          stop)
    ids = [m.message_id for m in messages]
    cpu_before = {"daemon": cpu_seconds(daemon.proc.pid), "sink": cpu_seconds(sink.proc.pid),
                  "bench": cpu_seconds()}
    try:
        progress = threading.Thread(target=_progress, args=(sink, ids, submitter, stop, args),
                                    daemon=True)
        progress.start()
        begun = submitter.run()
        accepted_ids = [m.message_id for m, r in zip(messages, submitter.results, strict=True)
                        if r.ok]
        submitted_at = max((r.accepted for r in submitter.results if r.ok), default=begun)
        backlog = len(accepted_ids) - sink.received(accepted_ids)
        wait_for_acks(sink, accepted_ids, daemon, args.stall_timeout, args.deadline,
                      "throughput", args.json)
        cpu = {"daemon": cpu_seconds(daemon.proc.pid), "sink": cpu_seconds(sink.proc.pid),
               "bench": cpu_seconds()}
    finally:
        if profiler:
            profiler.stop()
    arrivals = sorted(a.arrived for i in accepted_ids if (a := sink.first_ack(i)) is not None)
    done = arrivals[-1] if arrivals else begun
    n = len(accepted_ids)
    lo_i, hi_i = n // 10, (n * 9) // 10
    lo, hi = (arrivals[lo_i], arrivals[hi_i]) if n >= 20 else (begun, done)
    steady = hi_i - lo_i
    summary = {
        "messages": len(messages), "accepted": n, "failed": len(messages) - n,
        "clients": args.clients, "per_session": args.per_session,
        "cpu_seconds": {k: cpu[k] - cpu_before[k] for k in cpu},
        "daemon_cpu_ms_per_message": 1000 * (cpu["daemon"] - cpu_before["daemon"]) / max(1, n),
        "smtp_connections": submitter.connections, "client_errors": dict(submitter.errors),
        "accept_seconds": submitted_at - begun,
        "accept_rate": n / max(1e-9, submitted_at - begun),
        "end_to_end_seconds": done - begun,
        "end_to_end_rate": n / max(1e-9, done - begun),
        "steady_ack_rate": steady / max(1e-9, hi - lo) if n >= 20 and hi_i > lo_i else None,
        "ack_backlog_when_accepted": backlog,
        "drain_seconds": done - submitted_at,
        "smtp_answer_ms_p50": 1000 * percentile(
            [r.accepted - r.started for r in submitter.results if r.ok], 50),
        "smtp_answer_ms_p99": 1000 * percentile(
            [r.accepted - r.started for r in submitter.results if r.ok], 99),
    }
    return summary, submitter.results


def _progress(sink: Sink, ids: list[str], submitter: Submitter, stop: threading.Event,
              args: argparse.Namespace) -> None:
    if args.json:
        return
    began = time.monotonic()
    while not stop.wait(5):
        done = sum(1 for r in submitter.results if r.ok)
        if done >= len(ids):
            return
        print(f"  throughput: {time.monotonic() - began:5.0f} s  accepted {done}/{len(ids)}, "
              f"acknowledged {sink.received(ids)}", file=sys.stderr)


def latency_phase(args: argparse.Namespace, daemon: Daemon, sink: Sink,
                  messages: list[BenchMessage], stop: threading.Event,
                  ) -> tuple[dict[str, Any], list[Sent]]:
    start_at = time.monotonic() + 0.5
    interval = 1.0 / args.rate
    # Open loop: each message has a due time; a slow answer does not delay the next send.
    sessions = max(2, min(8, int(args.rate // 10) + 2))
    submitter = Submitter(daemon.port, messages, SUPPORT_ADDRESS, sessions, args.per_session,
                          stop, schedule=lambda i: start_at + i * interval)
    submitter.run()
    ok = [(m, r) for m, r in zip(messages, submitter.results, strict=True) if r.ok]
    wait_for_acks(sink, [m.message_id for m, _ in ok], daemon, args.stall_timeout,
                  args.deadline, "latency", args.json)
    from_answer, from_start = [], []
    for message, result in ok:
        ack = sink.first_ack(message.message_id)
        assert ack is not None
        from_answer.append(1000 * (ack.arrived - result.accepted))
        from_start.append(1000 * (ack.arrived - result.started))
    lag = [1000 * (r.started - r.scheduled) for _, r in ok]
    summary: dict[str, Any] = {
        "messages": len(messages), "accepted": len(ok), "rate": args.rate,
        "client_sessions": sessions, "client_errors": dict(submitter.errors),
        "send_lag_ms_max": max(lag, default=0.0),
        "smtp_answer_ms_p50": percentile([1000 * (r.accepted - r.started) for _, r in ok], 50),
        "smtp_answer_ms_p99": percentile([1000 * (r.accepted - r.started) for _, r in ok], 99),
    }
    for name, values in (("from_data_250", from_answer), ("from_mail_from", from_start)):
        summary[name] = {f"p{q}": percentile(values, q) for q in (50, 95, 99)}
        summary[name]["max"] = max(values, default=float("nan"))
        summary[name]["mean"] = statistics.fmean(values) if values else float("nan")
    return summary, submitter.results


def check_correctness(directory: Path, config: Path, sink: Sink,
                      phases: list[list[tuple[BenchMessage, Sent]]],
                      cli_check: bool) -> dict[str, Any]:
    """Tickets vs messages (SQLite and the CLI), exactly one acknowledgement each."""
    sent = [(m, r) for phase in phases for m, r in phase]
    accepted = {m.message_id: m for m, r in sent if r.ok}
    problems: list[str] = []
    db = sqlite3.connect(f"file:{directory / 'intake.db'}?mode=ro", uri=True)
    try:
        tickets = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
        registered = Counter(row[0] for row in db.execute(
            "SELECT message_id FROM ticket_messages WHERE direction = 'in' AND kind = 'request'"))
        inputs = dict(db.execute("SELECT status, count(*) FROM inputs GROUP BY status").fetchall())
        outbox = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        input_errors = [row[0] for row in db.execute(
            "SELECT last_error FROM inputs WHERE status != 'processed' LIMIT 5")]
    finally:
        db.close()
    if tickets != len(accepted):
        problems.append(f"{tickets} tickets for {len(accepted)} accepted messages")
    missing_ticket = [i for i in accepted if registered.get(i, 0) == 0]
    double_ticket = [i for i in accepted if registered.get(i, 0) > 1]
    foreign = [i for i in registered if i not in accepted]
    if missing_ticket:
        problems.append(f"{len(missing_ticket)} messages without a ticket, e.g. "
                        f"{missing_ticket[:3]}")
    if double_ticket:
        problems.append(f"{len(double_ticket)} messages with several tickets, e.g. "
                        f"{double_ticket[:3]}")
    if foreign:
        problems.append(f"{len(foreign)} tickets for messages we did not send: {foreign[:3]}")
    for status, count in inputs.items():
        if status != "processed":
            problems.append(f"{count} inputs in status {status!r}: {input_errors[:2]}")
    with sink._lock:  # a final, consistent snapshot
        acks = {k: list(v) for k, v in sink.acks.items()}
        unmatched, total_acks = sink.unmatched, sink.count
    no_ack = [i for i in accepted if i not in acks]
    many_acks = {i: len(acks[i]) for i in accepted if len(acks.get(i, [])) > 1}
    wrong_rcpt = [i for i, m in accepted.items()
                  if i in acks and any(a.recipient.lower() != m.sender.lower() for a in acks[i])]
    stray = [i for i in acks if i not in accepted]
    if no_ack:
        problems.append(f"{len(no_ack)} messages without an acknowledgement, e.g. {no_ack[:3]}")
    if many_acks:
        problems.append(f"{len(many_acks)} messages acknowledged more than once, e.g. "
                        f"{list(many_acks.items())[:3]}")
    if wrong_rcpt:
        problems.append(f"{len(wrong_rcpt)} acknowledgements to the wrong address: "
                        f"{wrong_rcpt[:3]}")
    if stray or unmatched:
        problems.append(f"{len(stray)} acknowledgements answering unknown ids, {unmatched} "
                        "without In-Reply-To")
    cli: dict[str, Any] = {"checked": False}
    if cli_check:
        began = time.monotonic()
        try:
            out = subprocess.run(
                [str(VENV_BIN / "intake-gateway"), "--config", str(config), "tickets", "list",
                 "--json"], capture_output=True, timeout=300, check=True, cwd=directory)
            listed = json.loads(out.stdout)
            cli = {"checked": True, "tickets": len(listed),
                   "seconds": round(time.monotonic() - began, 2)}
            if len(listed) != len(accepted):
                problems.append(f"`tickets list --json` shows {len(listed)} tickets for "
                                f"{len(accepted)} accepted messages")
        except (subprocess.SubprocessError, json.JSONDecodeError, OSError) as error:
            problems.append(f"`tickets list --json` failed: {error}")
    return {"messages_sent": len(sent), "messages_accepted": len(accepted), "tickets": tickets,
            "acknowledgements": total_acks, "inputs_by_status": inputs,
            "outbox_by_status": outbox, "cli": cli, "problems": problems, "ok": not problems}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="SMTP in, acknowledgement out: end-to-end throughput and latency of the "
                    "Intake Gateway daemon (SQLite), with a correctness check.")
    parser.add_argument("--messages", type=int, default=10_000,
                        help="throughput phase: messages to submit (default 10000)")
    parser.add_argument("--latency-messages", type=int, default=1_000,
                        help="latency phase: messages at --rate (default 1000; 0 skips)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="latency phase: messages per second (default 20)")
    parser.add_argument("--clients", type=int, default=16,
                        help="throughput phase: concurrent SMTP sessions (default 16, "
                             "an MTA delivering in parallel)")
    parser.add_argument("--per-session", type=int, default=20,
                        help="messages per SMTP session before QUIT and reconnect (default 20)")
    parser.add_argument("--workers", type=int, default=None,
                        help="[intake] workers: processes that parse and register (default: 1)")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default=None,
                        help="[intake] event_loop (default: the daemon's, uvloop)")
    parser.add_argument("--worker-niceness", type=int, default=None,
                        help="[intake] worker_niceness (default: the daemon's, 10)")
    parser.add_argument("--seed", type=int, default=20261125, help="message generator seed")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 500 messages + 100 at the rate (under a minute)")
    parser.add_argument("--relay-connections", type=int, default=None,
                        help="[outgoing] connections for the daemon (default: the daemon's)")
    parser.add_argument("--stall-timeout", type=float, default=60.0,
                        help="give up when no acknowledgement arrives for this long (s)")
    parser.add_argument("--deadline", type=float, default=1800.0,
                        help="give up on a phase's acknowledgements after this long (s)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="wait this long after the last acknowledgement for duplicates (s)")
    parser.add_argument("--no-cli-check", action="store_true",
                        help="skip the `tickets list --json` cross-check")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy record the daemon during the throughput phase into this "
                             "file (.svg flamegraph, .json speedscope, else raw collapsed stacks)")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (database, logs, config)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        if "--messages" not in (argv or sys.argv):
            args.messages = 500
        if "--latency-messages" not in (argv or sys.argv):
            args.latency_messages = 100
    if args.messages < 1 or args.clients < 1 or args.per_session < 1 or args.rate <= 0:
        parser.error("--messages, --clients, --per-session and --rate must be positive")
    return args


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "kernel": platform.release(),
            "load_before": os.getloadavg()}


def _log(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    stop = threading.Event()
    directory = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    sink: Sink | None = None
    daemon: Daemon | None = None
    result: dict[str, Any] = {"machine": machine(), "directory": str(directory)}
    try:
        factory = MessageFactory(args.seed)
        _log(args, f"bench: generating {args.messages} + {args.latency_messages} messages ...")
        bulk, gen_s = generate(factory, args.messages, "tput")
        paced, _ = generate(factory, args.latency_messages, "lat")
        result["message_sizes"] = size_stats(bulk + paced)
        result["generation_seconds"] = gen_s
        sink = Sink(directory / "sink.log")
        smtp_port = free_port()
        config = write_config(directory, smtp_port, sink.port, args.relay_connections,
                              args.workers, args.worker_niceness, args.event_loop)
        daemon = Daemon(config, smtp_port, directory / "daemon.log")
        result["daemon_start_seconds"] = daemon.wait_ready(120)
        _log(args, f"bench: daemon pid {daemon.proc.pid} on 127.0.0.1:{smtp_port}, relay sink on "
                   f"127.0.0.1:{sink.port}, work dir {directory}")

        _log(args, f"bench: throughput phase: {len(bulk)} messages over {args.clients} sessions")
        result["throughput"], bulk_sent = throughput_phase(args, daemon, sink, bulk, stop,
                                                           args.profile)
        phases = [list(zip(bulk, bulk_sent, strict=True))]
        time.sleep(args.settle)
        if paced:
            _log(args, f"bench: latency phase: {len(paced)} messages at {args.rate:g}/s")
            result["latency"], paced_sent = latency_phase(args, daemon, sink, paced, stop)
            phases.append(list(zip(paced, paced_sent, strict=True)))
            time.sleep(args.settle)
        result["daemon_exit"] = daemon.stop()
        _log(args, "bench: daemon stopped; checking tickets and acknowledgements ...")
        result["correctness"] = check_correctness(directory, config, sink, phases,
                                                  not args.no_cli_check)
        return result
    finally:
        stop.set()
        if daemon is not None:
            daemon.stop()
        if sink is not None:
            sink.stop()
        if args.keep:
            _log(args, f"bench: kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def render(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["message_sizes"]
    lines = [
        "",
        "Intake Gateway SMTP benchmark",
        f"  machine      {m['cpus']} CPU ({m['cpu']}), Python {m['python']}, "
        f"SQLite {m['sqlite']}, load before {m['load_before'][0]:.2f}",
        f"  messages     {s['count']} generated in {result['generation_seconds']:.1f} s: "
        f"mean {s['mean_kb']:.1f} KB, median {s['median_kb']:.1f} KB, p95 {s['p95_kb']:.1f} KB, "
        f"max {s['max_kb']:.0f} KB, {s['total_mb']:.0f} MB in all",
    ]
    t = result.get("throughput")
    if t:
        steady = f"{t['steady_ack_rate']:.0f}/s" if t["steady_ack_rate"] else "-"
        verdict = "PASS" if t["end_to_end_rate"] >= END_TO_END_TARGET else "FAIL"
        lines += [
            f"Throughput ({t['accepted']}/{t['messages']} accepted, {t['clients']} client "
            f"sessions, {t['per_session']} messages per session)",
            f"  accept side  {t['accept_rate']:8.1f} msg/s  ({t['accept_seconds']:.1f} s to the "
            f"last DATA 250; SMTP answer p50 {t['smtp_answer_ms_p50']:.0f} ms, "
            f"p99 {t['smtp_answer_ms_p99']:.0f} ms)",
            f"  end to end   {t['end_to_end_rate']:8.1f} msg/s  ({t['end_to_end_seconds']:.1f} s "
            f"to the last acknowledgement; target >= {END_TO_END_TARGET:.0f}: {verdict})",
            f"  steady acks  {steady:>8} (10th..90th percentile of arrivals); backlog "
            f"{t['ack_backlog_when_accepted']} unacknowledged when submission ended, drained in "
            f"{t['drain_seconds']:.1f} s",
        ]
        c = t["cpu_seconds"]
        wall = t["end_to_end_seconds"]
        lines.append(
            f"  CPU          daemon {c['daemon']:.1f} s ({100 * c['daemon'] / wall:.0f}% of one "
            f"core, {t['daemon_cpu_ms_per_message']:.1f} ms/message), sink {c['sink']:.1f} s, "
            f"load generator {c['bench']:.1f} s")
        if t["client_errors"]:
            lines.append(f"  client errors {t['client_errors']}")
    lat = result.get("latency")
    if lat:
        a, b = lat["from_data_250"], lat["from_mail_from"]
        verdict = "PASS" if a["p99"] <= P99_TARGET_MS else "FAIL"
        lines += [
            f"Latency ({lat['accepted']} messages at {lat['rate']:g}/s, open loop; "
            f"send lag max {lat['send_lag_ms_max']:.0f} ms)",
            f"  DATA 250 -> ack at sink   p50 {a['p50']:7.1f}  p95 {a['p95']:7.1f}  "
            f"p99 {a['p99']:7.1f}  max {a['max']:7.1f} ms  (target p99 <= "
            f"{P99_TARGET_MS:.0f}: {verdict})",
            f"  MAIL FROM -> ack at sink  p50 {b['p50']:7.1f}  p95 {b['p95']:7.1f}  "
            f"p99 {b['p99']:7.1f}  max {b['max']:7.1f} ms",
            f"  SMTP answer (MAIL FROM -> DATA 250) p50 {lat['smtp_answer_ms_p50']:.1f} ms, "
            f"p99 {lat['smtp_answer_ms_p99']:.1f} ms",
        ]
    c = result.get("correctness")
    if c:
        cli = c["cli"]
        lines += [
            f"Correctness: {'OK' if c['ok'] else 'MISMATCH'}",
            f"  {c['messages_accepted']} accepted messages, {c['tickets']} tickets, "
            f"{c['acknowledgements']} acknowledgements at the sink"
            + (f", `tickets list --json`: {cli['tickets']} ({cli['seconds']} s)"
               if cli.get("checked") else ""),
            f"  inputs {c['inputs_by_status']}, outbox {c['outbox_by_status']}",
            *(f"  ! {problem}" for problem in c["problems"]),
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_sink"]:
        return run_sink()
    args = parse_args(argv)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(render(result))
    return 0 if result["correctness"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
