"""Request Tracker 5 through its REST 2 API: the `Tracker` the gateway hands tickets to.

Our number is in the RT ticket's subject ("[SUP-000042] ..."), so a ticket created by an
attempt that died before we recorded it is found again; each later message carries its own
marker in its subject for the same reason.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.clock import iso_utc
from gateway.config.tracker_settings import TrackerSettings
from gateway.trackers.interface import (
    FileOut,
    MessageOut,
    RemoteChange,
    StatusMeaning,
    TicketOut,
    TrackerRefused,
    TrackerUnavailable,
)

if TYPE_CHECKING:
    import httpx

# RT's default lifecycle; a custom one's inactive statuses count as active here (see
# docs/outlet.md) unless they carry one of these names.
_MEANINGS: dict[str, StatusMeaning] = {"resolved": "resolved", "rejected": "rejected",
                                       "deleted": "rejected"}
_STATUS_FOR: dict[StatusMeaning, str] = {"resolved": "resolved", "rejected": "rejected",
                                         "active": "open"}
# A look reaches this much further back than the last one began: the requests' own time
# and a late commit in RT are covered.
OVERLAP_S = 60
PER_PAGE = 100
# One look reads at most this many pages; the rest comes at the next look.
MAX_PAGES = 20


def meaning_of(status: str) -> StatusMeaning:
    return _MEANINGS.get(status.lower(), "active")


def subject_tag(number: str) -> str:
    """What in an RT subject says which of our tickets it is."""
    return f"[{number}]"


def _quoted(value: str) -> str:
    """A TicketSQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _files(files: list[FileOut]) -> list[dict[str, str]]:
    return [{"FileName": f.filename, "FileType": f.content_type,
             "FileContent": base64.b64encode(f.data).decode("ascii")} for f in files]


def describe(ticket: TicketOut) -> str:
    """The RT ticket's first message: the customer's text, then our facts and deadlines."""
    facts = [f"Intake Gateway ticket {ticket.number}", f"Priority: {ticket.priority}"]
    if ticket.requester_name or ticket.requester_email:
        facts.append("Requester: " + " ".join(
            p for p in (ticket.requester_name, f"<{ticket.requester_email}>"
                        if ticket.requester_email else None) if p))
    if ticket.requester_phone:
        facts.append(f"Phone: {ticket.requester_phone}")
    if ticket.reaction_due:
        facts.append(f"Reaction due: {iso_utc(ticket.reaction_due)}")
    if ticket.resolution_due:
        facts.append(f"Resolution due: {iso_utc(ticket.resolution_due)}")
    return f"{ticket.text.rstrip()}\n\n-- \n" + "\n".join(facts) + "\n"


class RequestTracker:
    """One `[[trackers]]` entry of kind "request-tracker"."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.name = settings.name
        self._settings = settings
        self._api = f"{settings.url}/REST/2.0"
        self._client: httpx.AsyncClient | None = None

    def meaning(self, status: str) -> StatusMeaning:
        return meaning_of(status)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Imported on first use, as the webhooks do: httpx pulls in console libraries.
            import httpx

            token = self._settings.token.get_secret_value()
            self._client = httpx.AsyncClient(
                timeout=self._settings.timeout_s, trust_env=False, follow_redirects=False,
                headers={"Authorization": f"token {token}", "User-Agent": "intake-gateway"})
        return self._client

    async def _call(self, method: str, path: str, *, json: object = None,
                    params: dict[str, str | int] | None = None) -> Any:
        import httpx
        try:
            response = await self._http().request(method, f"{self._api}/{path}", json=json,
                                                  params=params)
        except httpx.TimeoutException:
            raise TrackerUnavailable(
                f"Request Tracker gave no answer within {self._settings.timeout_s:g} s") from None
        except httpx.HTTPError as error:
            raise TrackerUnavailable(
                f"Request Tracker unreachable: {type(error).__name__}: {error}"[:300]) from None
        if response.status_code in (401, 403):
            raise TrackerRefused(f"Request Tracker refused the credentials "
                                 f"(HTTP {response.status_code} on {method} /{path.split('?')[0]})")
        if response.status_code >= 500 or response.status_code == 429:
            raise TrackerUnavailable(f"Request Tracker answered HTTP {response.status_code}")
        if response.status_code >= 300:
            raise TrackerRefused(f"Request Tracker answered HTTP {response.status_code} on "
                                 f"{method} /{path}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError:
            raise TrackerUnavailable("Request Tracker answered something other than JSON "
                                     f"(HTTP {response.status_code})") from None

    async def find(self, number: str) -> tuple[str, str] | None:
        tag = subject_tag(number)
        found = await self._call("GET", "tickets", params={
            # In our queue only: another gateway (staging, say) may use the same numbers in
            # its own queue. Only a create whose record was lost is looked for here, within
            # seconds of it, before anyone could move the ticket.
            "query": f"Queue = {_quoted(self._settings.queue)} AND Subject LIKE {_quoted(tag)}",
            "fields": "Subject,Status",
            "orderby": "id", "order": "ASC", "per_page": PER_PAGE})
        for item in found.get("items", []):
            # LIKE is a substring match in any case; ours opens the subject.
            if str(item.get("Subject", "")).startswith(tag):
                return str(item["id"]), str(item.get("Status", ""))
        return None

    async def create(self, ticket: TicketOut) -> tuple[str, str]:
        body: dict[str, object] = {
            "Queue": self._settings.queue,
            "Subject": f"{subject_tag(ticket.number)} {ticket.subject}".strip(),
            "Content": describe(ticket), "ContentType": "text/plain",
            "Priority": self._settings.priority_map[ticket.priority]}
        if ticket.requester_email:
            body["Requestor"] = ticket.requester_email
        if ticket.resolution_due:
            body["Due"] = iso_utc(ticket.resolution_due)
        if ticket.attachments:
            body["Attachments"] = _files(ticket.attachments)
        created = await self._call("POST", "ticket", json=body)
        remote_id = str(created.get("id", ""))
        if not remote_id:
            raise TrackerUnavailable(f"Request Tracker created no ticket: {created}"[:300])
        return remote_id, await self.status(remote_id)

    async def status(self, remote_id: str) -> str:
        shown = await self._call("GET", f"ticket/{remote_id}")
        return str(shown.get("Status", ""))

    async def has_message(self, remote_id: str, marker: str) -> bool:
        for page in range(1, MAX_PAGES + 1):
            found = await self._call("GET", f"ticket/{remote_id}/attachments", params={
                "fields": "Subject", "per_page": PER_PAGE, "page": page})
            if any(marker in str(item.get("Subject", "")) for item in found.get("items", [])):
                return True
            if page >= int(found.get("pages") or 1):
                return False
        return False

    async def add_message(self, remote_id: str, message: MessageOut) -> None:
        body: dict[str, object] = {"Subject": message.subject, "Content": message.text or " ",
                                   "ContentType": "text/plain"}
        if message.attachments:
            body["Attachments"] = _files(message.attachments)
        await self._call("POST", f"ticket/{remote_id}/{message.visibility}", json=body)

    async def update(self, remote_id: str, *, priority: str | None = None,
                     status: StatusMeaning | None = None) -> str | None:
        body: dict[str, object] = {}
        if priority is not None:
            body["Priority"] = self._settings.priority_map[priority]
        if status is not None:
            body["Status"] = _STATUS_FOR[status]
        if body:
            await self._call("PUT", f"ticket/{remote_id}", json=body)
        return _STATUS_FOR[status] if status is not None else None

    async def changes(self, since: datetime) -> list[RemoteChange]:
        # TicketSQL reads an absolute time in the token user's time zone whatever zone it
        # names; a relative one ("N seconds ago") is RT's own now, in any zone and without
        # comparing our clock with RT's.
        age_s = max(0, math.ceil((datetime.now(UTC) - since).total_seconds())) + OVERLAP_S
        seen: list[RemoteChange] = []
        for page in range(1, MAX_PAGES + 1):
            found = await self._call("GET", "tickets", params={
                "query": f"LastUpdated >= '{age_s} seconds ago'",
                "fields": "Status,LastUpdated", "orderby": "LastUpdated", "order": "ASC",
                "per_page": PER_PAGE, "page": page})
            for item in found.get("items", []):
                status = str(item.get("Status", ""))
                seen.append(RemoteChange(str(item["id"]), status, meaning_of(status),
                                         str(item.get("LastUpdated", ""))))
            if page >= int(found.get("pages") or 1):
                break
        return seen

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
