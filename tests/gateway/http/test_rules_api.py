"""POST /api/v1/rules/explain over real HTTP: the rules in force, on a message or payload."""

from __future__ import annotations

import httpx

from tests.conftest import make_mail
from tests.gateway.http.helpers import admin
from tests.gateway.http.test_generic_hook import running  # noqa: F401 (fixture)


def test_explain_an_email_and_a_payload(running) -> None:  # noqa: F811
    base = running.http_url
    mail = make_mail("Не работает отправка сообщений",
                     body="С утра сообщения не доставляются большинству наших пользователей, "
                          "очередь растёт, обходного пути нет.")
    assert httpx.post(f"{base}/api/v1/rules/explain", content=mail,
                      headers={"content-type": "message/rfc822"}).status_code == 401
    answer = httpx.post(f"{base}/api/v1/rules/explain", content=mail,
                        headers={**admin(), "content-type": "message/rfc822"})
    assert answer.status_code == 200
    result = answer.json()
    assert result["decision"]["priority"] in ("critical", "high")
    assert result["decision"]["table_row"] in ("system-down", "high-function-down")
    assert result["decision"]["facts"]["workaround"]["value"] == "none"
    assert {"rule", "line", "fired", "when"} <= set(result["rules"][0])

    short = httpx.post(f"{base}/api/v1/rules/explain", headers=admin(),
                       json={"subject": "help", "description": "call me"})
    assert short.status_code == 200 and short.json()["decision"]["priority"] == "low"
    # Nothing is registered by an explanation.
    assert httpx.get(f"{base}/api/v1/tickets", headers=admin()).json() == []


def test_explain_refuses_what_it_cannot_read(running) -> None:  # noqa: F811
    base = running.http_url
    bad = httpx.post(f"{base}/api/v1/rules/explain", content=b"{not json",
                     headers={**admin(), "content-type": "application/json"})
    assert (bad.status_code, bad.json()["field"]) == (422, "body")
    odd = httpx.post(f"{base}/api/v1/rules/explain", content=b"x",
                     headers={**admin(), "content-type": "image/png"})
    assert (odd.status_code, odd.json()["field"]) == (422, "content-type")
