"""The customer's window over real HTTP: the acknowledgement's signed link, sign-in by a
one-time link from the outgoing maildir, the company's requests and no one else's, a new
request with an attachment; tampered, expired and reused links refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningGateway, make_mail
from tests.gateway.http.portal_helpers import mails_to, portal_path, start_portal
from tests.gateway.outbox.test_outbox import submit


@pytest.fixture
def portal(make_gateway, tmp_path: Path) -> RunningGateway:
    return start_portal(make_gateway, tmp_path, 'max_upload_bytes = 200000\n')


def sign_in(running: RunningGateway, client: httpx.Client, address: str) -> httpx.Response:
    asked = client.post("/portal/sign-in", data={"email": address})
    assert asked.status_code == 200
    running.settle()
    link = portal_path(mails_to(running, address)[-1])
    return client.get(link)


def test_acknowledgement_link_shows_the_request(portal: RunningGateway) -> None:
    """The link in the acknowledgement opens the request's page without signing in: status,
    priority, deadlines, the conversation; the customer's HTML is shown as text."""
    submit(portal, make_mail("Calls <b>drop</b>", sender="ivan@acme.example",
                             body="Every call drops <script>alert(1)</script> after ten "
                                  "seconds for all our users since this morning."))
    portal.settle()
    [ack] = mails_to(portal, "ivan@acme.example")
    path = portal_path(ack)
    assert path.startswith("/portal/t/")
    page = httpx.get(f"{portal.http_url}{path}")
    assert page.status_code == 200
    assert "SUP-000001" in page.text and "Calls &lt;b&gt;drop&lt;/b&gt;" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script" not in page.text
    assert 'lang="ru"' in page.text and "Решение не позднее" in page.text
    english = httpx.get(f"{portal.http_url}{path}", params={"lang": "en"})
    assert "Resolution due" in english.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # One character changed: refused, and nothing of the request shown.
    token = path.rsplit("/", 1)[1]
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    refused = httpx.get(f"{portal.http_url}/portal/t/{altered}")
    assert refused.status_code == 403 and "SUP-000001" not in refused.text
    # Past its lifetime (90 days): expired.
    portal.clock.advance(timedelta(days=91))
    assert httpx.get(f"{portal.http_url}{path}").status_code == 410


def test_sign_in_once_see_company_requests_only(portal: RunningGateway) -> None:
    """A registered address gets a one-time link; the session sees its company's requests,
    not another company's; the link used twice is refused."""
    submit(portal, make_mail("Acme trouble", sender="ivan@acme.example",
                             body="Nothing works for anyone in our office since the update."))
    submit(portal, make_mail("Globex trouble", sender="boss@globex.example",
                             body="Nothing works for anyone in our office since the update."))
    portal.settle()
    with httpx.Client(base_url=portal.http_url) as client:
        assert client.get("/portal/requests").status_code == 303
        # An unknown address gets the same answer and no mail.
        unknown = client.post("/portal/sign-in", data={"email": "eve@evil.example"})
        assert unknown.status_code == 200 and 'id="sent"' in unknown.text
        portal.settle()
        assert mails_to(portal, "eve@evil.example") == []
        # Anyone at acme.example is one of the company's people.
        opened = sign_in(portal, client, "maria@acme.example")
        assert opened.status_code == 303 and opened.headers["location"] == "/portal/requests"
        listing = client.get("/portal/requests")
        assert "SUP-000001" in listing.text and "SUP-000002" not in listing.text
        assert "ООО Акме" in listing.text
        assert client.get("/portal/requests/SUP-000001").status_code == 200
        # Globex's request: as if it did not exist.
        assert client.get("/portal/requests/SUP-000002").status_code == 404
        link = portal_path(mails_to(portal, "maria@acme.example")[-1])
    with httpx.Client(base_url=portal.http_url) as other:
        again = other.get(link)
        assert again.status_code == 410 and "portal_session" not in again.headers.get(
            "set-cookie", "")


def test_new_request_with_attachment_and_limits(portal: RunningGateway) -> None:
    """A signed-in person submits a request with a file: registered as the company's, from
    them, whatever the form claims; a post without the page's form token or over the upload
    limit is refused."""
    with httpx.Client(base_url=portal.http_url) as client:
        sign_in(portal, client, "boss@globex.example")
        form = client.get("/portal/new").text
        token = form.split('name="form_token" value="')[1].split('"')[0]
        request_id = form.split('name="request_id" value="')[1].split('"')[0]
        fields = {"form_token": token, "request_id": request_id,
                  "subject": "Export <i>fails</i>", "customer": "acme",
                  "contact_email": "eve@evil.example",
                  "description": "The nightly export fails for every user since Monday."}
        sent = client.post("/portal/new", data=fields,
                           files={"files": ("export log.txt", b"line 1\nline 2\n",
                                            "text/plain")})
        assert sent.status_code == 303
        portal.settle()
        listing = client.get("/portal/requests").text
        assert "Export &lt;i&gt;fails&lt;/i&gt;" in listing
        from gateway.tickets.view import list_tickets
        [ticket] = list_tickets(portal.gateway.db.engine)
        assert (ticket["customer"], ticket["requester"]["email"]) == (
            "globex", "boss@globex.example")
        page = client.get(f"/portal/requests/{ticket['number']}").text
        assert "export log.txt" in page
        forged = client.post("/portal/new", data={**fields, "form_token": "x"},
                             files={"files": ("a.txt", b"a", "text/plain")})
        assert forged.status_code == 403
        too_big = client.post("/portal/new", data=fields,
                              files={"files": ("big.bin", b"x" * 300_000,
                                               "application/octet-stream")})
        assert too_big.status_code == 413
        portal.settle()
        assert len(list_tickets(portal.gateway.db.engine)) == 1


def test_sign_in_links_limited_per_address(portal: RunningGateway) -> None:
    """At most five sign-in links an hour to one address; the answer never says so."""
    with httpx.Client(base_url=portal.http_url) as client:
        for _ in range(7):
            answer = client.post("/portal/sign-in", data={"email": "Ivan@Acme.example"})
            assert answer.status_code == 200 and 'id="sent"' in answer.text
    portal.settle()
    assert len(mails_to(portal, "ivan@acme.example")) == 5
    portal.clock.advance(timedelta(minutes=61))
    with httpx.Client(base_url=portal.http_url) as client:
        client.post("/portal/sign-in", data={"email": "ivan@acme.example"})
    portal.settle()
    assert len(mails_to(portal, "ivan@acme.example")) == 6
