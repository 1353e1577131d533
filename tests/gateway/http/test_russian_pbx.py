"""MegaFon, Mango Office and Sipuni over real HTTP, with payloads as their API documents send."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.config.settings import ConfigError, parse_settings
from gateway.tickets.view import list_tickets
from tests.conftest import START, RunningGateway, Sink
from tests.gateway.cli.test_cli import cli
from tests.gateway.http.helpers import admin, call, hook_config, post_call, secret_file

CRM_TOKEN = "megafon-crm-token-5f2c"
MANGO_KEY = "mango-vpbx-api-key-0a1b"
MANGO_SALT = "mango-api-salt-9z8y"
SIPUNI_KEY = "sipuni-key-77aa"
ATS_TOKEN = "ats-token-1234"


def russian_hooks(tmp_path: Path) -> str:
    return (
        f'[[webhooks]]\nname = "megafon"\nprovider = "megafon"\n'
        f'{secret_file(tmp_path, "megafon", CRM_TOKEN)}\n'
        f'[[webhooks]]\nname = "mango"\nprovider = "mango"\napi_key = "{MANGO_KEY}"\n'
        f'{secret_file(tmp_path, "mango", MANGO_SALT)}\n'
        f'[[webhooks]]\nname = "sipuni"\nprovider = "sipuni"\n'
        f'{secret_file(tmp_path, "sipuni", SIPUNI_KEY)}\n'
        # The MegaFon history record through `mapped`: the case the issue found read wrongly.
        f'[[webhooks]]\nname = "ats"\nprovider = "mapped"\ntoken_field = "crm_token"\n'
        f'methods = ["GET", "POST"]\nsuccess_answer = {{ ok = true }}\n'
        f'{secret_file(tmp_path, "ats", ATS_TOKEN)}'
        'mapping = { call_id = "callid", caller = "phone", duration_s = "duration", '
        'answered = { field = "status", yes = ["Success", "ANSWER"] }, '
        'inbound = { field = "type", yes = ["in", "missed"] } }\n\n'
        # A Mango-like sender: JSON in a form field, nested fields, sub-paths, token in query.
        f'[[webhooks]]\nname = "nested"\nprovider = "mapped"\ntoken_field = "token"\n'
        f'json_field = "json"\n{secret_file(tmp_path, "nested", ATS_TOKEN)}'
        'mapping = { call_id = "entry_id", caller = "from.number", event = "_path", '
        'answered = { field = "entry_result", yes = ["1"], no = ["0"] } }\n')


@pytest.fixture
def running(make_gateway, relay_sink: Sink, tmp_path: Path) -> RunningGateway:
    extra, http = hook_config(tmp_path, russian_hooks(tmp_path))
    gateway: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    return gateway


def _inputs(running: RunningGateway) -> int:
    with running.gateway.db.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM inputs")).scalar_one())


# ---- MegaFon "Облачная АТС" ---------------------------------------------------------------

def megafon_history(**fields: str) -> dict[str, str]:
    """A cmd=history record as the CRM REST API posts it (form fields)."""
    record = {"cmd": "history", "type": "in", "user": "petrov", "ext": "101",
              "groupRealName": "Support", "telnum": "74950000000", "phone": "74951234567",
              "diversion": "74950000000", "start": "20261125T071500Z", "duration": "42",
              "callid": "mf-1", "link": "https://ats.example/rec/mf-1.mp3",
              "status": "Success", "crm_token": CRM_TOKEN}
    record.update(fields)
    return record


def test_megafon_answered_history_is_not_a_missed_call(running) -> None:
    """status=Success is an answered call: no "call back" ticket, and MegaFon gets its 200."""
    answer = httpx.post(f"{running.http_url}/hooks/megafon", data=megafon_history())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True}
    running.settle()
    assert list_tickets(running.gateway.db.engine) == []
    assert _inputs(running) == 1


def test_megafon_missed_call_events_and_contact(running, relay_sink: Sink) -> None:
    """INCOMING, CANCELLED, then a history record status=missed: one call-back ticket."""
    base = {"crm_token": CRM_TOKEN, "phone": "74951234567", "callid": "mf-2",
            "telnum": "74950000000"}
    for kind in ("INCOMING", "CANCELLED"):
        sent = httpx.post(f"{running.http_url}/hooks/megafon",
                          data={"cmd": "event", "type": kind, **base})
        assert sent.status_code == 200, sent.text
    missed = megafon_history(callid="mf-2", status="missed", duration="0")
    assert httpx.post(f"{running.http_url}/hooks/megafon", data=missed).status_code == 200
    # The PBX repeats the record: stored once.
    assert httpx.post(f"{running.http_url}/hooks/megafon", data=missed).json() == {
        "success": True}
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Missed call from 74951234567, call back"
    assert ticket["customer"] == "acme"
    assert _inputs(running) == 3
    # The contact look-up is answered with the customer's name and stores nothing.
    found = httpx.post(f"{running.http_url}/hooks/megafon",
                       data={"cmd": "contact", "phone": "74951234567", "callid": "mf-3",
                             "crm_token": CRM_TOKEN})
    assert found.json() == {"contact_name": "Acme", "responsible": ""}
    unknown = httpx.post(f"{running.http_url}/hooks/megafon",
                         data={"cmd": "contact", "phone": "79990001122", "crm_token": CRM_TOKEN})
    assert unknown.status_code == 200 and unknown.json() == {}
    assert _inputs(running) == 3


def test_megafon_refusals(running) -> None:
    """A wrong or absent crm_token is 401; a history record without status is 422."""
    url = f"{running.http_url}/hooks/megafon"
    wrong = httpx.post(url, data=megafon_history(crm_token="guess"))
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "bad crm_token", "field": "crm_token"}
    record = megafon_history()
    del record["crm_token"]
    assert httpx.post(url, data=record).json() == {"error": "missing crm_token",
                                                   "field": "crm_token"}
    record = megafon_history(callid="mf-9")
    del record["status"]
    assert httpx.post(url, data=record).json() == {"error": "field required", "field": "status"}
    # The same call's record again, with another outcome: refused, not passed off as a retry.
    assert httpx.post(url, data=megafon_history(callid="mf-8")).status_code == 200
    changed = httpx.post(url, data=megafon_history(callid="mf-8", status="missed"))
    assert changed.status_code == 422
    assert "call id mf-8 (history) was stored before with different data" in changed.text
    assert _inputs(running) == 1


# ---- Mango Office -------------------------------------------------------------------------

def mango_form(event: dict[str, Any], key: str = MANGO_KEY, salt: str = MANGO_SALT,
               json_text: str | None = None) -> dict[str, str]:
    text_ = json_text if json_text is not None else json.dumps(event, ensure_ascii=False)
    sign = hashlib.sha256((key + text_ + salt).encode()).hexdigest()
    return {"vpbx_api_key": key, "sign": sign, "json": text_}


def mango_summary(entry: str, result: int, direction: int = 1) -> dict[str, Any]:
    return {"entry_id": entry, "call_direction": direction,
            "from": {"extension": "", "number": "74951234567"},
            "to": {"extension": "101", "number": "74950000000"}, "line_number": "74950000000",
            "create_time": 1795593300, "forward_time": 1795593302,
            "talk_time": 1795593310 if result else 0, "end_time": 1795593352,
            "entry_result": result, "disconnect_reason": 1100}


def test_mango_events_and_missed_summary(running, relay_sink: Sink) -> None:
    """events/call then events/summary with entry_result 0: the call-back ticket."""
    call_event = {"entry_id": "MToxMDA2", "call_id": "MToxMDA2OjE=", "timestamp": 1795593300,
                  "seq": 1, "call_state": "Appeared", "location": "ivr",
                  "from": {"number": "74951234567"},
                  "to": {"extension": "101", "number": "74950000000"}}
    url = f"{running.http_url}/hooks/mango"
    sent = httpx.post(f"{url}/events/call", data=mango_form(call_event))
    assert sent.status_code == 200, sent.text
    assert sent.json() == {"success": True}
    summary = mango_form(mango_summary("MToxMDA2", 0))
    assert httpx.post(f"{url}/events/summary", data=summary).status_code == 200
    retry = httpx.post(f"{url}/events/summary", data=summary)  # a retry
    assert retry.status_code == 200, retry.text
    answered = mango_form(mango_summary("MToxMDA3", 1))
    assert httpx.post(f"{url}/events/summary", data=answered).status_code == 200
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Missed call from 74951234567, call back"
    assert ticket["customer"] == "acme"
    assert _inputs(running) == 3


def test_mango_refusals(running) -> None:
    """Bad sign, another VPBX's key, JSON that is not JSON, an unknown sub-path, reused ids."""
    url = f"{running.http_url}/hooks/mango/events/summary"
    forged = mango_form(mango_summary("e-1", 0), salt="not-the-salt")
    assert httpx.post(url, data=forged).json() == {"error": "bad sign", "field": "sign"}
    other = mango_form(mango_summary("e-1", 0), key="other-vpbx")
    assert httpx.post(url, data=other).status_code == 401
    broken = httpx.post(url, data=mango_form({}, json_text="{entry_id: 1"))
    assert broken.status_code == 422
    assert broken.json()["field"] == "json"
    assert broken.json()["error"].startswith("not JSON: ")
    nested = mango_summary("e-2", 0)
    nested["from"] = "74951234567"
    refused = httpx.post(url, data=mango_form(nested))
    assert refused.json() == {"error": "expected an object", "field": "json.from"}
    elsewhere = httpx.post(f"{running.http_url}/hooks/mango/events/dtmf",
                           data=mango_form(mango_summary("e-3", 0)))
    assert elsewhere.status_code == 422 and elsewhere.json()["field"] == "path"
    assert httpx.post(url, data=mango_form(mango_summary("e-4", 0))).status_code == 200
    reused = httpx.post(url, data=mango_form(mango_summary("e-4", 1)))
    assert reused.status_code == 422
    assert _inputs(running) == 1


# ---- Sipuni --------------------------------------------------------------------------------

def sipuni_end(call_id: str, status: str, **fields: str) -> dict[str, str]:
    """event=2, the end of a call, as Sipuni sends it (GET query or POST form)."""
    event = {"event": "2", "call_id": call_id, "src_num": "74951234567", "src_type": "1",
             "dst_num": "74950000000", "dst_type": "1", "status": status,
             "timestamp": "1795593352", "call_start_timestamp": "1795593300",
             "short_src_num": "", "short_dst_num": "101"}
    event.update(fields)
    return event


def test_sipuni_get_and_post(running) -> None:
    """A GET with NOANSWER opens the call-back ticket; a POST with ANSWER does not; the key
    in the URL authenticates and is not stored."""
    url = f"{running.http_url}/hooks/sipuni"
    missed = httpx.get(url, params={**sipuni_end("1764054900.1", "NOANSWER"),
                                    "key": SIPUNI_KEY})
    assert missed.status_code == 200, missed.text
    assert missed.json() == {"success": True}
    answered = httpx.post(url, params={"key": SIPUNI_KEY},
                          data=sipuni_end("1764054900.2", "ANSWER"))
    assert answered.json() == {"success": True}
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Missed call from 74951234567, call back"
    with running.gateway.db.engine.connect() as connection:
        raws = connection.execute(text("SELECT raw FROM input_bodies")).scalars().all()
    assert len(raws) == 2
    assert not any(SIPUNI_KEY.encode() in raw for raw in raws)
    no_key = httpx.get(url, params=sipuni_end("1764054900.3", "NOANSWER"))
    assert no_key.status_code == 401 and no_key.json()["field"] == "key"
    wrong = httpx.get(url, params={**sipuni_end("x", "BUSY"), "key": "guess"})
    assert wrong.json() == {"error": "bad key", "field": "key"}


def test_get_flood_is_429(make_gateway, relay_sink: Sink, tmp_path: Path) -> None:
    """GET events count against the per-source limit like any request."""
    extra, http = hook_config(tmp_path, russian_hooks(tmp_path))
    flooded: RunningGateway = make_gateway(
        relay_port=relay_sink.port, http=http,
        extra=extra + "\n[limits]\nhttp_requests_per_source_per_min = 2\n")
    url = f"{flooded.http_url}/hooks/sipuni"
    answers = [httpx.get(url, params={**sipuni_end(f"f-{n}", "ANSWER"), "key": SIPUNI_KEY})
               for n in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert answers[2].json()["field"] == "http_requests_per_source_per_min"
    assert _inputs(flooded) == 2


# ---- mapped, grown up ----------------------------------------------------------------------

def test_mapped_value_map_reads_megafon_success_as_answered(running) -> None:
    """The issue's case through `mapped`: status=Success is answered; type=out never missed;
    status=missed of an inbound call is the call-back ticket; the token is a body field."""
    url = f"{running.http_url}/hooks/ats"
    answered = httpx.post(url, data=megafon_history(crm_token=ATS_TOKEN, callid="a-1"))
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"ok": True}
    outgoing = megafon_history(crm_token=ATS_TOKEN, callid="a-2", type="out", status="Cancel")
    assert httpx.post(url, data=outgoing).status_code == 200
    missed = megafon_history(callid="a-3", status="missed")
    del missed["crm_token"]
    # GET, token in the query.
    assert httpx.get(url, params={**missed, "crm_token": ATS_TOKEN}).status_code == 200
    assert httpx.post(url, data=megafon_history(crm_token="guess")).status_code == 401
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Missed call from 74951234567, call back"


def test_mapped_json_in_form_with_dotted_paths_and_sub_paths(running) -> None:
    """JSON inside the form field, from.number, the sub-path as the event's name."""
    url = f"{running.http_url}/hooks/nested"
    form = {"json": json.dumps(mango_summary("n-1", 0))}
    sent = httpx.post(f"{url}/events/summary", params={"token": ATS_TOKEN}, data=form)
    assert sent.status_code == 202, sent.text
    between = {"json": json.dumps({**mango_summary("n-1", 0), "entry_result": 7})}
    assert httpx.post(f"{url}/events/call", params={"token": ATS_TOKEN},
                      data=between).status_code == 202
    broken = httpx.post(f"{url}/events/summary", params={"token": ATS_TOKEN},
                        data={"json": "[1, 2"})
    assert broken.status_code == 422 and broken.json()["field"] == "json"
    assert httpx.post(f"{url}/events/summary", data=form).json() == {
        "error": "missing token", "field": "token"}
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Missed call from 74951234567, call back"
    assert _inputs(running) == 2


def test_generic_hook_unchanged(running) -> None:
    """The generic hook still answers 202 with the input id."""
    assert post_call(running.http_url, call("g-1"), START).status_code == 202


def test_stale_events_are_refused(running) -> None:
    """An event whose own time is days from ours is a replay or a lost queue: 401, nothing
    stored; the signature is checked first."""
    stale = {**mango_summary("old-1", 0), "end_time": 1795593352 - 3 * 86_400}
    refused = httpx.post(f"{running.http_url}/hooks/mango/events/summary",
                         data=mango_form(stale))
    assert refused.status_code == 401
    assert refused.json()["field"] == "json.end_time"
    assert "stale or replayed" in refused.json()["error"]
    forged = httpx.post(f"{running.http_url}/hooks/mango/events/summary",
                        data=mango_form(stale, salt="guess"))
    assert forged.json()["error"] == "bad sign"
    old = httpx.get(f"{running.http_url}/hooks/sipuni",
                    params={**sipuni_end("old-2", "NOANSWER", timestamp="1764054952"),
                            "key": SIPUNI_KEY})
    assert old.status_code == 401 and old.json()["field"] == "timestamp"
    assert _inputs(running) == 0


def test_missed_calls_from_unknown_numbers_are_listed(running, tmp_path: Path) -> None:
    """Not registered (missed_calls_from_unknown = "store"), but listed for a call back by
    GET /api/v1/calls and `intake-gateway calls list`."""
    unknown = {**mango_summary("u-1", 0), "from": {"number": "79990001122"}}
    assert httpx.post(f"{running.http_url}/hooks/mango/events/summary",
                      data=mango_form(unknown)).status_code == 200
    known = httpx.get(f"{running.http_url}/hooks/sipuni",
                      params={**sipuni_end("k-1", "NOANSWER"), "key": SIPUNI_KEY})
    assert known.status_code == 200
    running.settle()
    assert len(list_tickets(running.gateway.db.engine)) == 1
    listed = httpx.get(f"{running.http_url}/api/v1/calls", headers=admin())
    assert listed.status_code == 200, listed.text
    [missed] = listed.json()
    assert missed["caller"] == "+79990001122"
    assert missed["hook"] == "mango" and missed["call_id"] == "u-1"
    assert missed["started_at"] == "2026-11-25T07:55:00Z"
    assert httpx.get(f"{running.http_url}/api/v1/calls").status_code == 401
    # The command line, as a process of its own (in-process it would reconfigure logging).
    lines = cli("calls", "list", "--json", config=tmp_path / "config0.toml").stdout.splitlines()
    printed = "\n".join(lines[lines.index("["):lines.index("]") + 1])  # logs go to stdout too
    assert json.loads(printed) == listed.json()


def test_openapi_names_the_security_schemes(running) -> None:
    """Integrators read each scheme from /openapi.json; the admin API names its bearer."""
    published = httpx.get(f"{running.http_url}/openapi.json").json()
    schemes = published["components"]["securitySchemes"]
    assert {"adminBearer", "genericHmac", "megafonCrmToken", "mangoSign", "sipuniKey"} <= set(
        schemes)
    assert published["paths"]["/api/v1/calls"]["get"]["security"] == [{"adminBearer": []}]
    hook_security = published["paths"]["/hooks/{name}"]["post"]["security"]
    assert {"mangoSign": []} in hook_security


@pytest.mark.parametrize(("hook", "problem"), [
    ('provider = "mango"\nsecret_env = "PATH"\n', "api_key"),
    ('provider = "zammad-cti"\nsecret_env = "PATH"\ntoken_field = "t"\n', "token_field"),
])
def test_config_refuses_options_that_would_weaken_a_hook(hook: str, problem: str) -> None:
    """A mango hook needs its api_key; a token field on a path-token provider would skip the
    path token, so it is an error, not ignored."""
    with pytest.raises(ConfigError) as error:
        parse_settings(f'[[webhooks]]\nname = "h"\n{hook}', None)
    assert problem in str(error.value.problems)
