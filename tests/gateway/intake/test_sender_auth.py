"""Sender authentication end to end: real DNS on loopback, signed and forged mail over SMTP."""

from __future__ import annotations

import json
import smtplib
import time
import uuid
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from sqlmodel import Session, select

from gateway.cli.quarantine import list_quarantine
from gateway.store.models import HELD, PROCESSED, Input, Ticket
from tests.conftest import RunningGateway, Sink
from tests.dns_zone import DkimKey, Zones, loopback_dns
from tests.gateway.cli.test_cli import cli
from tests.gateway.sla.test_sla_clock import ticket
from tests.gateway.tickets.test_ticket_events import event

KEY = DkimKey.generate()  # one key for the module: 2048-bit generation is slow enough


@pytest.fixture(scope="module")
def dns_port() -> Iterator[tuple[Zones, int]]:
    zones = Zones()
    # good.test: SPF for loopback, a DKIM key, DMARC reject. A premium customer.
    zones.add_txt("good.test", "v=spf1 ip4:127.0.0.1 -all")
    zones.add_txt("sel._domainkey.good.test", KEY.record)
    zones.add_txt("_dmarc.good.test", "v=DMARC1; p=reject")
    # list.test: a mailing list that relays good.test's mail with a footer.
    zones.add_txt("list.test", "v=spf1 ip4:127.0.0.1 -all")
    zones.add_txt("sel._domainkey.list.test", KEY.record)  # the list's ARC seals
    # listy.test: a customer whose mail goes through such a list (trust = "report").
    zones.add_txt("sel._domainkey.listy.test", KEY.record)
    zones.add_txt("_dmarc.listy.test", "v=DMARC1; p=reject")
    # soft.test: SPF softfail for everyone, no DKIM, DMARC quarantine.
    zones.add_txt("soft.test", "v=spf1 ~all")
    zones.add_txt("_dmarc.soft.test", "v=DMARC1; p=quarantine")
    # slow.test: its server never answers in time.
    zones.silent.add("slow.test")
    with loopback_dns(zones) as port:
        yield zones, port


def customers_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.toml"
    path.write_text('''
[[customer]]
id = "good"
tier = "premium"
language = "en"
domains = ["good.test"]

[[customer]]
id = "listy"
domains = ["listy.test"]
trust = "report"

[[customer]]
id = "soft"
domains = ["soft.test"]

[[customer]]
id = "slow"
domains = ["slow.test"]
''', encoding="utf-8")
    return path


def start(make_gateway: Callable[..., RunningGateway], relay: Sink, tmp_path: Path,
          port: int, trust: str = "") -> RunningGateway:
    return make_gateway(relay_port=relay.port, extra=(
        f'[files]\ncustomers = "{customers_file(tmp_path)}"\n'
        f'[trust]\nmode = "enforce"\nresolvers = ["127.0.0.1:{port}"]\ndns_timeout_s = 1\n'
        f"{trust}"))


def mail(sender: str, *, subject: str = "Mail is down",
         body: str = "Since this morning messages are not delivered to most users of ours.",
         sign: str | None = None, footer: str = "", headers: dict[str, str] | None = None
         ) -> bytes:
    """A message from SENDER; SIGN: the domain whose key signs it (before any FOOTER)."""
    message = EmailMessage()
    for name, value in (headers or {}).items():
        message[name] = value
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2]}>"
    message.set_content(body)
    raw = message.as_bytes(policy=policy.SMTP)
    if sign:
        raw = dkim.sign(raw, b"sel", sign.encode(), KEY.private_pem,
                        include_headers=[b"from", b"to", b"subject", b"message-id"]) + raw
    if footer:  # what a mailing list appends: the signed body hash no longer matches
        raw += f"--\r\n{footer}\r\n".encode()
    return raw


def send(running: RunningGateway, raw: bytes, mail_from: str,
         helo: str = "mail.sender.test") -> None:
    with smtplib.SMTP("127.0.0.1", running.smtp_port, local_hostname=helo,
                      timeout=30) as client:
        client.sendmail(mail_from, ["support@example.com"], raw)


def inputs(running: RunningGateway) -> list[Input]:
    with Session(running.gateway.db.engine) as session:
        return list(session.exec(select(Input).order_by(Input.id)))  # type: ignore[arg-type]


def tickets(running: RunningGateway) -> list[Ticket]:
    with Session(running.gateway.db.engine) as session:
        return list(session.exec(select(Ticket)))


def test_aligned_pass_registers_as_the_customer_and_dns_is_cached(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """Signed by good.test from an address its SPF allows: SPF, DKIM and DMARC pass aligned,
    the ticket is the premium customer's and acknowledged; the key and policy were asked for
    once for two messages (the resolver keeps answers for their TTL)."""
    zones, port = dns_port
    before = zones.asked("sel._domainkey.good.test")
    running = start(make_gateway, relay_sink, tmp_path, port)
    send(running, mail("Ivan <ivan@good.test>", sign="good.test"), "ivan@good.test")
    send(running, mail("Olga <olga@good.test>", subject="Other", sign="good.test"),
         "olga@good.test")
    running.settle()
    shown = ticket(running)
    assert shown["customer"] == "good" and shown["tier"] == "premium"
    auth = shown["authentication"]
    assert isinstance(auth, dict)
    assert auth["source"] == "smtp" and auth["verdict"] == "pass"
    assert auth["spf"] == {"result": "pass", "domain": "good.test", "aligned": True}
    assert auth["dkim"] == {"result": "pass", "domain": "good.test", "aligned": True}
    assert auth["dmarc"] == {"result": "pass", "policy": "reject"}
    assert len(relay_sink.messages) == 2
    # Another gateway in this process may have asked before us; two messages, one question.
    assert zones.asked("sel._domainkey.good.test") - before <= 1


def test_forged_from_is_held_without_acknowledgement_until_released(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """From: the premium customer, sent from elsewhere and unsigned: DMARC fails. Stored and
    held with the reason, no ticket, no acknowledgement; `quarantine release ID` registers it
    as the customer, acknowledged, with the reason in its notes."""
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port)
    send(running, mail("CEO <ceo@good.test>"), "attacker@evil.test")
    running.settle()
    [held] = inputs(running)
    assert held.status == HELD
    assert "DMARC fail" in (held.outcome or "") and "customer good" in (held.outcome or "")
    assert tickets(running) == [] and relay_sink.messages == []
    [row] = list_quarantine(running.gateway.db.engine)
    assert row["authentication"]["verdict"] == "fail"
    assert row["authentication"]["spf"]["result"] == "none"

    released = cli("quarantine", "release", str(held.id), config=tmp_path / "config0.toml")
    assert "registered SUP-000001" in released.stdout
    shown = ticket(running)
    assert shown["customer"] == "good" and shown["tier"] == "premium"
    assert any("released after review" in note for note in shown["notes"])  # type: ignore[attr-defined]
    assert [m["X-Envelope-To"] for m in relay_sink.messages] == ["ceo@good.test"]
    again = cli("quarantine", "release", str(held.id), config=tmp_path / "config0.toml",
                check=False)
    assert again.returncode == 1 and "not held" in again.stderr


def test_a_list_footer_breaks_dkim_held_unless_the_customer_is_known_to(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """Through a list: SPF passes for the list (not aligned), the footer breaks DKIM, DMARC
    fails. good.test's is held; listy.test's customer has `trust = "report"`: registered, the
    failure in its notes."""
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port)
    send(running, mail("Ivan <ivan@good.test>", sign="good.test", footer="The support list"),
         "bounce@list.test")
    send(running, mail("Lena <lena@listy.test>", sign="listy.test", footer="The list"),
         "bounce@list.test")
    running.settle()
    first, second = inputs(running)
    assert first.status == HELD
    auth = json.loads(first.authentication or "{}")
    assert auth["spf"] == {"result": "pass", "domain": "list.test", "aligned": False}
    assert auth["dkim"]["result"] == "fail" and auth["dmarc"]["result"] == "fail"
    assert second.status == PROCESSED
    [registered] = tickets(running)
    assert registered.customer_id == "listy"
    assert "sender authentication fail: listy.test: DMARC fail" in registered.notes


def test_spf_softfail_without_dkim_is_held(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port)
    send(running, mail("Anna <anna@soft.test>"), "anna@soft.test")
    running.settle()
    [held] = inputs(running)
    auth = json.loads(held.authentication or "{}")
    assert held.status == HELD
    assert auth["spf"]["result"] == "softfail" and auth["dkim"]["result"] == "none"
    assert auth["dmarc"] == {"result": "fail", "policy": "quarantine"}
    assert relay_sink.messages == []


def test_dns_timeout_is_temperror_delivered_and_marked(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """The sender's DNS does not answer: temperror. Never dropped nor held: registered for the
    customer, acknowledged, and the ticket says its sender could not be checked."""
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port)
    started = time.monotonic()
    send(running, mail("Pavel <pavel@slow.test>"), "pavel@slow.test")
    accepted = time.monotonic() - started
    running.settle()
    shown = ticket(running)
    assert shown["customer"] == "slow"
    auth = shown["authentication"]
    assert isinstance(auth, dict)
    assert auth["verdict"] == "temperror"
    assert auth["spf"]["result"] == "temperror" and auth["dmarc"]["result"] == "temperror"
    assert "sender authentication temperror" in " ".join(shown["notes"])  # type: ignore[arg-type]
    assert len(relay_sink.messages) == 1
    # The SMTP answer never waits for DNS: it was checked after the 250.
    assert accepted < 1


def test_authentication_results_only_from_a_trusted_authserv_id(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """Behind a front MTA (verify_smtp = false): a sender's own Authentication-Results
    claiming pass is ignored, so the forged From is held; the front MTA's is believed."""
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port, trust=(
        'verify_smtp = false\ntrusted_authserv_ids = ["mx.front.test"]\n'))
    forged = mail("CEO <ceo@good.test>", headers={"Authentication-Results": (
        "mx.evil.test; spf=pass smtp.mailfrom=ceo@good.test; dkim=pass header.d=good.test;"
        " dmarc=pass header.from=good.test")})
    send(running, forged, "attacker@evil.test")
    vouched = mail("Ivan <ivan@good.test>", subject="Other", headers={
        "Authentication-Results": ("mx.front.test; spf=pass smtp.mailfrom=ivan@good.test;"
                                   " dkim=pass header.d=good.test;"
                                   " dmarc=pass header.from=good.test")})
    send(running, vouched, "ivan@good.test")
    running.settle()
    first, second = inputs(running)
    assert first.status == HELD
    assert "no Authentication-Results from a trusted authserv-id" in (first.outcome or "")
    assert second.status == PROCESSED
    auth = ticket(running)["authentication"]
    assert isinstance(auth, dict)
    assert auth["source"] == "authserv-id mx.front.test" and auth["verdict"] == "pass"


def test_arc_from_a_trusted_sealer_vouches_for_what_the_list_changed(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """The list checked good.test's mail (pass), added its footer and sealed it with ARC. With
    list.test among arc_sealers, the sealed results count: registered for the customer. The
    same message sealed by a sealer we do not trust is held."""
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port,
                    trust='arc_sealers = ["list.test"]\n')

    def through_list(subject: str) -> bytes:
        raw = mail("Ivan <ivan@good.test>", subject=subject, sign="good.test",
                   footer="The support list")
        raw = (b"Authentication-Results: list.test; spf=pass smtp.mailfrom=ivan@good.test;"
               b" dkim=pass header.d=good.test; dmarc=pass header.from=good.test\r\n" + raw)
        seal = dkim.arc_sign(raw, b"sel", b"list.test", KEY.private_pem, b"list.test",
                             include_headers=[b"from", b"to", b"subject", b"message-id"])
        return b"".join(seal) + raw

    send(running, through_list("Through the list"), "bounce@list.test")
    forged = through_list("Sealed by whom").replace(b"d=list.test", b"d=other.test")
    send(running, forged, "bounce@list.test")
    running.settle()
    first, second = inputs(running)
    assert first.status == PROCESSED
    auth = ticket(running)["authentication"]
    assert isinstance(auth, dict)
    assert auth["source"] == "arc list.test" and auth["verdict"] == "pass"
    assert "our own check: good.test: DMARC fail" in auth["reason"]
    assert second.status == HELD


CRITICAL = "Now the whole system is down: nobody can log in at all, no workaround."


def test_only_an_authentic_reply_raises_the_priority(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """A forged reply that would raise the ticket to critical is kept as a note marked
    unauthenticated; the same reply signed by the customer raises it."""
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port)
    send(running, mail("Ivan <ivan@good.test>", sign="good.test", subject="Help",
                       body="Help!"), "ivan@good.test")
    running.settle()
    before = ticket(running)["priority"]
    assert before != "critical"
    send(running, mail("Ivan <ivan@good.test>", subject="Re: [SUP-000001] Help",
                       body=CRITICAL), "attacker@evil.test")
    running.settle()
    shown = ticket(running)
    assert shown["priority"] == before
    assert any("unauthenticated reply" in n for n in shown["notes"])  # type: ignore[attr-defined]
    send(running, mail("Ivan <ivan@good.test>", subject="Re: [SUP-000001] Help",
                       body=CRITICAL, sign="good.test"), "ivan@good.test")
    running.settle()
    assert ticket(running)["priority"] == "critical"


def test_only_an_authentic_reply_agrees_to_a_lowering_or_reopens(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
        dns_port: tuple[Zones, int]) -> None:
    """A forged "I agree" leaves the proposal open and the priority as it was; a forged reply
    to a resolved ticket does not reopen it. Signed by the customer, both count."""
    _, port = dns_port
    running = start(make_gateway, relay_sink, tmp_path, port)
    send(running, mail("Ivan <ivan@good.test>", sign="good.test", subject="Help",
                       body=CRITICAL), "ivan@good.test")
    running.settle()
    assert ticket(running)["priority"] == "critical"
    event(running, "SUP-000001", type="priority_proposed", priority="high",
          reason="Most users can log in again")
    running.settle()
    agree = mail("Ivan <ivan@good.test>", subject="Re: [SUP-000001] Help", body="I agree.")
    send(running, agree, "attacker@evil.test")
    running.settle()
    assert ticket(running)["priority"] == "critical"
    send(running, mail("Ivan <ivan@good.test>", subject="Re: [SUP-000001] Help",
                       body="I agree.", sign="good.test"), "ivan@good.test")
    running.settle()
    assert ticket(running)["priority"] == "high"

    event(running, "SUP-000001", type="resolved", reason="fixed")
    running.settle()
    send(running, mail("Ivan <ivan@good.test>", subject="Re: [SUP-000001] Help",
                       body="It is broken again."), "attacker@evil.test")
    running.settle()
    shown = ticket(running)
    assert shown["status"] == "resolved"
    assert sum("unauthenticated reply" in n for n in shown["notes"]) == 2  # type: ignore[attr-defined]
    send(running, mail("Ivan <ivan@good.test>", subject="Re: [SUP-000001] Help",
                       body="It is broken again.", sign="good.test"), "ivan@good.test")
    running.settle()
    assert ticket(running)["status"] != "resolved"


def test_parse_json_shows_what_a_trusted_authserv_id_found(tmp_path: Path) -> None:
    """`parse --json` of a file: no envelope to verify, so only the trusted relay's results;
    the sender's own Authentication-Results are not believed."""
    config = tmp_path / "config.toml"
    config.write_text('[trust]\ntrusted_authserv_ids = ["mx.front.test"]\n', encoding="utf-8")
    eml = tmp_path / "in.eml"
    eml.write_bytes(mail("Ivan <ivan@good.test>", headers={"Authentication-Results": (
        "mx.front.test; spf=fail smtp.mailfrom=x@evil.test; dkim=none; dmarc=fail"
        " header.from=good.test")}))
    shown = json.loads(cli("parse", str(eml), "--json", config=config).stdout)
    assert shown["authentication"]["source"] == "authserv-id mx.front.test"
    assert shown["authentication"]["verdict"] == "fail"
    eml.write_bytes(mail("Ivan <ivan@good.test>", headers={"Authentication-Results": (
        "mx.evil.test; dmarc=pass header.from=good.test")}))
    shown = json.loads(cli("parse", str(eml), "--json", config=config).stdout)
    assert shown["authentication"]["source"] is None
    assert shown["authentication"]["verdict"] == "fail"


def test_a_resolver_must_be_an_address_and_port(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[trust]\nresolvers = ["dns.example"]\n', encoding="utf-8")
    checked = cli("check-config", config=config, check=False)
    assert checked.returncode == 2
    assert "trust.resolvers" in checked.stderr or "resolvers" in checked.stderr
