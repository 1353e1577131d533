"""/portal: a request's signed read-only page, and the customer portal (sign-in by e-mail,
the company's requests, a new request with attachments). No bearer token: links and a
signed session cookie decide who sees what."""

from __future__ import annotations

import asyncio
import re
import secrets

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.http.api import services_of
from gateway.http.body import read_body
from gateway.http.errors import Refused
from gateway.http.handoff import accept_event
from gateway.http.portal_access import (
    company_tickets,
    request_sign_in,
    ticket_of_customer,
    use_sign_in,
)
from gateway.http.services import Services
from gateway.portal.forms import FormRefused, multipart, url_encoded, web_request
from gateway.portal.links import LinkRefused, PortalKeys, Session, keys_for
from gateway.portal.pages import DEFAULT_ZONE, TEXT, page, ticket_page
from parsers.telephony import PayloadError, read_event

router = APIRouter(prefix="/portal", tags=["portal"], include_in_schema=False)
COOKIE = "portal_session"
_NUMBER = re.compile(r"[A-Za-z0-9_-]{1,32}")
_PROBLEMS = {
    "en": {"expired": "This link has expired.", "invalid": "This link is not valid.",
           "used": "This sign-in link was used already: ask for a new one.",
           "not_found": "There is no such request among yours.",
           "form": "The form was not sent from this page: please try again.",
           "subject": "Please give the request a subject.",
           "files": "Too many files."},
    "ru": {"expired": "Срок действия ссылки истёк.", "invalid": "Ссылка недействительна.",
           "used": "Эта ссылка для входа уже использована: запросите новую.",
           "not_found": "Среди ваших обращений такого нет.",
           "form": "Форма отправлена не с этой страницы: попробуйте ещё раз.",
           "subject": "Укажите тему обращения.", "files": "Слишком много файлов."},
}


def _keys(services: Services) -> PortalKeys:
    if services.settings.portal is None:
        raise Refused(404, "the portal is not configured")
    return keys_for(services.settings.portal, services.clock)


def _language(request: Request, session: Session | None, services: Services) -> str:
    """?lang=, else the remembered choice, else the customer's language, else the browser's."""
    asked = request.query_params.get("lang") or request.cookies.get("portal_lang")
    if asked in TEXT:
        return str(asked)
    if session is not None and services.context is not None and (
            customer := services.context().directory.get(session.customer)):
        return customer.language
    accepted = request.headers.get("accept-language", "")
    return "ru" if accepted.lower().startswith("ru") else "en"


def _zone(services: Services) -> str:
    """The policy's report zone: the portal shows times as the reports do."""
    return services.context().policy.report_zone if services.context else DEFAULT_ZONE


def _html(request: Request, body: str, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(body, status_code=status, headers={
        # Nothing from elsewhere, no scripts, no framing; tokens stay out of Referer.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})
    if (lang := request.query_params.get("lang")) in TEXT:
        response.set_cookie("portal_lang", str(lang), max_age=365 * 86400, path="/portal",
                            samesite="lax", httponly=True)
    return response


def _problem(request: Request, services: Services, session: Session | None, reason: str,
             status: int) -> HTMLResponse:
    language = _language(request, session, services)
    text = _PROBLEMS.get(language, _PROBLEMS["en"])[reason]
    return _html(request, page("message", language, session, text, problem=text), status)


def _session(request: Request, keys: PortalKeys) -> Session | None:
    return keys.session_of(request.cookies.get(COOKIE))


@router.get("/t/{token}")
async def ticket_by_link(token: str, request: Request) -> Response:
    """The read-only page a request's acknowledgement links to."""
    services = services_of(request)
    keys = _keys(services)
    try:
        number = keys.ticket_of(token)
    except LinkRefused as refused:
        return _problem(request, services, None, "expired" if refused.expired else "invalid",
                        410 if refused.expired else 403)
    ticket = await asyncio.to_thread(ticket_of_customer, services.db.engine, number, None)
    if ticket is None:
        return _problem(request, services, None, "not_found", 404)
    session = _session(request, keys)
    return _html(request, ticket_page(ticket, _language(request, session, services), session,
                                             _zone(services)))


@router.get("/")
async def portal_home(request: Request) -> Response:
    services = services_of(request)
    if _session(request, _keys(services)) is not None:
        return RedirectResponse("/portal/requests", status_code=303)
    language = _language(request, None, services)
    return _html(request, page("sign_in", language, None, TEXT[language]["sign_in"],
                               sent=False, problem=None))


@router.post("/sign-in")
async def ask_sign_in(request: Request) -> Response:
    """Queue a sign-in link to a registered address; the same answer for any address."""
    services = services_of(request)
    keys = _keys(services)
    body = await read_body(request, 4096)
    try:
        email = url_encoded(body).get("email", "")
    except FormRefused:
        email = ""
    if services.context is not None and email:
        context = services.context()
        await asyncio.to_thread(request_sign_in, services.db.engine, context.directory, keys,
                                email, services.settings.outgoing.sender, services.clock.now())
        if services.wake_outbox is not None:
            services.wake_outbox()
    language = _language(request, None, services)
    return _html(request, page("sign_in", language, None, TEXT[language]["sign_in"],
                               sent=True, problem=None))


@router.get("/sign-in/{token}")
async def sign_in(token: str, request: Request) -> Response:
    services = services_of(request)
    keys = _keys(services)
    try:
        nonce = keys.sign_in_nonce(token)
    except LinkRefused as refused:
        return _problem(request, services, None, "expired" if refused.expired else "invalid",
                        410 if refused.expired else 403)
    session = await asyncio.to_thread(use_sign_in, services.db.engine, nonce,
                                      services.clock.now())
    if session is None:
        return _problem(request, services, None, "used", 410)
    response = RedirectResponse("/portal/requests", status_code=303)
    response.set_cookie(COOKIE, keys.session_cookie(session),
                        max_age=keys.settings.session_ttl_h * 3600, path="/portal",
                        httponly=True, samesite="lax",
                        secure=keys.settings.base_url.startswith("https://"))
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    response = RedirectResponse("/portal/", status_code=303)
    response.delete_cookie(COOKIE, path="/portal")
    return response


def _signed_in(request: Request) -> tuple[Services, PortalKeys, Session] | None:
    """The services, keys and session of a signed-in request; None: sign in first."""
    services = services_of(request)
    keys = _keys(services)
    session = _session(request, keys)
    return None if session is None else (services, keys, session)


@router.get("/requests")
async def requests_page(request: Request) -> Response:
    if (signed_in := _signed_in(request)) is None:
        return RedirectResponse("/portal/", status_code=303)
    services, _, session = signed_in
    tickets = await asyncio.to_thread(company_tickets, services.db.engine, session.customer)
    language = _language(request, session, services)
    customer = services.context().directory.get(session.customer) if services.context else None
    company = customer.name if customer and customer.name else session.customer
    return _html(request, page("requests", language, session, TEXT[language]["requests"],
                               _zone(services), tickets=tickets, company=company,
                               submitted=request.query_params.get("submitted") == "1"))


@router.get("/requests/{number}")
async def request_page(number: str, request: Request) -> Response:
    if (signed_in := _signed_in(request)) is None:
        return RedirectResponse("/portal/", status_code=303)
    services, _, session = signed_in
    ticket = None
    if _NUMBER.fullmatch(number):
        ticket = await asyncio.to_thread(ticket_of_customer, services.db.engine, number,
                                         session.customer)
    if ticket is None:
        # Another company's request looks exactly like one that does not exist.
        return _problem(request, services, session, "not_found", 404)
    return _html(request, ticket_page(ticket, _language(request, session, services), session,
                                             _zone(services)))


def _new_form(request: Request, services: Services, keys: PortalKeys, session: Session,
              problem: str | None = None, status: int = 200) -> HTMLResponse:
    language = _language(request, session, services)
    return _html(request, page(
        "new", language, session, TEXT[language]["new_request"], problem=problem,
        form_token=keys.form_token(session), request_id=f"portal-{secrets.token_hex(12)}",
        max_mb=services.settings.http.max_upload_bytes // 1_048_576), status)


@router.get("/new")
async def new_request_form(request: Request) -> Response:
    if (signed_in := _signed_in(request)) is None:
        return RedirectResponse("/portal/", status_code=303)
    services, keys, session = signed_in
    return _new_form(request, services, keys, session)


@router.post("/new")
async def submit_request(request: Request) -> Response:
    """The request goes through the web intake door, as the company's, from the signed-in
    person; what the form says about customer or contact is not taken."""
    if (signed_in := _signed_in(request)) is None:
        return RedirectResponse("/portal/", status_code=303)
    services, keys, session = signed_in
    body = await read_body(request, services.settings.http.max_upload_bytes)
    language = _language(request, session, services)
    problems = _PROBLEMS.get(language, _PROBLEMS["en"])
    try:
        form = multipart(request.headers.get("content-type", ""), body)
    except FormRefused as error:
        raise Refused(422, str(error), "body") from None
    if not keys.form_is_ours(form.fields.get("form_token", ""), session):
        return _new_form(request, services, keys, session, problems["form"], 403)
    if not form.fields.get("subject", "").strip():
        return _new_form(request, services, keys, session, problems["subject"], 422)
    if len(form.files) > services.settings.limits.attachments:
        return _new_form(request, services, keys, session, problems["files"], 413)
    fields = {name: form.fields.get(name, "").strip() for name in (
        "request_id", "subject", "description", "declared_priority")}
    fields = {k: v for k, v in fields.items() if v} | {
        "customer": session.customer, "contact_email": session.email}
    content_type, data = web_request(fields, form.files)
    try:
        event = read_event("web", "portal", content_type, data, channel="web")
    except PayloadError as error:
        return _new_form(request, services, keys, session, f"{error.field}: {error.problem}",
                         422)
    peer = request.client.host if request.client else None
    await accept_event(services, event, content_type, data, peer)
    return RedirectResponse("/portal/requests?submitted=1", status_code=303)
