"""The portal's pages, rendered on the server in Russian or English (escaped; no scripts,
no external assets)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from gateway.portal.links import Session

_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.portal", "templates"),
    # Customers' own words are shown: everything is escaped unless a template says not.
    autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False)

_COMMON = {
    "priorities": {"critical": "1 (critical)", "high": "2 (high)", "medium": "3 (medium)",
                   "low": "4 (low)"},
}
TEXT: dict[str, dict[str, Any]] = {
    "en": {**_COMMON,
           "portal": "Support portal", "language": "Language", "requests": "Our requests",
           "new_request": "New request", "sign_out": "Sign out", "sign_in": "Sign in",
           "status": "Status", "priority": "Priority", "why": "Why this priority",
           "received": "Received", "reaction_due": "Reaction due",
           "resolution_due": "Resolution due", "resolved": "Resolved",
           "conversation": "Conversation", "attachments": "Attachments",
           "times_in": "Times are in the {zone} time zone.",
           "your_email": "Your work e-mail address", "send_link": "Send me a sign-in link",
           "link_sent": "If this address is registered with us, a sign-in link is on its way. "
                        "It works once.",
           "number": "Number", "subject": "Subject", "description": "What happened",
           "requests_caption": "Your company's requests, newest first",
           "none_yet": "No requests yet.", "no_priority": "Let support decide",
           "at_most": "at most", "send": "Send the request",
           "submitted": "Your request was received; it appears here once it is registered.",
           "statuses": {"pending_registration": "waiting for working hours",
                        "registered": "registered, in work", "resolved": "resolved",
                        "closed": "closed", "merged": "merged into another request",
                        "waiting_customer": "waiting for your answer"},
           "kinds": {"request": "Your request", "reply": "Your reply",
                     "acknowledgement": "Our acknowledgement", "notice": "Our notice",
                     "auto_reply": "Automatic reply", "bounce": "Delivery failure"}},
    "ru": {**_COMMON,
           "priorities": {"critical": "1 (критический)", "high": "2 (высокий)",
                          "medium": "3 (средний)", "low": "4 (низкий)"},
           "portal": "Портал поддержки", "language": "Язык", "requests": "Наши обращения",
           "new_request": "Новое обращение", "sign_out": "Выйти", "sign_in": "Вход",
           "status": "Состояние", "priority": "Приоритет", "why": "Почему такой приоритет",
           "received": "Получено", "reaction_due": "Реакция не позднее",
           "resolution_due": "Решение не позднее", "resolved": "Решено",
           "conversation": "Переписка", "attachments": "Вложения",
           "times_in": "Время указано в часовом поясе {zone}.",
           "your_email": "Ваш рабочий адрес электронной почты",
           "send_link": "Прислать ссылку для входа",
           "link_sent": "Если этот адрес у нас зарегистрирован, ссылка для входа уже "
                        "отправлена. Она действует один раз.",
           "number": "Номер", "subject": "Тема", "description": "Что случилось",
           "requests_caption": "Обращения вашей компании, сначала новые",
           "none_yet": "Обращений пока нет.", "no_priority": "На усмотрение поддержки",
           "at_most": "не более", "send": "Отправить обращение",
           "submitted": "Обращение получено; оно появится здесь, когда будет "
                        "зарегистрировано.",
           "statuses": {"pending_registration": "ждёт рабочего времени",
                        "registered": "зарегистрировано, в работе", "resolved": "решено",
                        "closed": "закрыто", "merged": "объединено с другим обращением",
                        "waiting_customer": "ждём вашего ответа"},
           "kinds": {"request": "Ваше обращение", "reply": "Ваш ответ",
                     "acknowledgement": "Наше подтверждение", "notice": "Наше уведомление",
                     "auto_reply": "Автоответ", "bounce": "Ошибка доставки"}},
}
# Messages the customer's page shows: theirs and what we sent them.
SHOWN_KINDS = ("request", "reply", "acknowledgement", "notice")
DEFAULT_ZONE = "Europe/Moscow"


def page(name: str, language: str, session: Session | None, title: str,
         zone: str = DEFAULT_ZONE, **values: Any) -> str:
    """Template NAME filled in LANGUAGE (ru or en), times in ZONE (the policy's report zone)."""
    lang = language if language in TEXT else "en"
    local_zone = ZoneInfo(zone)

    def local(value: str | None) -> str:
        if not value:
            return "—"
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(
            local_zone).strftime("%d.%m.%Y %H:%M")

    return _PAGES.get_template(f"{name}.html.j2").render(
        lang=lang, t=TEXT[lang], session=session, title=title, local=local, zone=zone,
        **values)


def ticket_page(ticket: dict[str, Any], language: str, session: Session | None,
                zone: str = DEFAULT_ZONE) -> str:
    """One request: status, priority and why, deadlines, the conversation."""
    messages = [m for m in ticket["messages"] if m["kind"] in SHOWN_KINDS]
    # The reasons' words after the rule's name: the name is for support's own people.
    why = [str(r).split(": ", 1)[-1] for r in ticket.get("reasons", [])][:5]
    return page("ticket", language, session, f"{ticket['number']}: {ticket['subject']}",
                zone, ticket=ticket, messages=messages, why=why)
