"""HubSpot CRM v3: a finished call becomes a contact, a meeting per booking and a note with
the transcript and outcome, both associated with the contact.

Requests, as documented by HubSpot (base ``https://api.hubapi.com``, header
``Authorization: Bearer <private app access token>``):

1. ``POST /crm/v3/objects/contacts/search`` with a ``filterGroups`` EQ filter on ``phone``
   (or ``mobilephone``) finds the contact
   (https://developers.hubspot.com/docs/api-reference/2026-03/crm/search-the-crm);
2. ``PATCH /crm/v3/objects/contacts/{contactId}`` updates it, or
   ``POST /crm/v3/objects/contacts`` creates it (``properties``: phone, firstname,
   lastname, email); a 409 "Contact already exists. Existing ID: N" (same email) is taken
   as the contact to update;
3. ``POST /crm/v3/objects/meetings`` logs each booking (``hs_timestamp``,
   ``hs_meeting_title``, ``hs_meeting_body``, ``hs_meeting_start_time``,
   ``hs_meeting_end_time``, ``hs_meeting_outcome`` SCHEDULED), associated with the contact
   by type 200 (meeting to contact)
   (https://developers.hubspot.com/docs/api/crm/meetings);
4. ``POST /crm/v3/objects/notes`` adds the note (``hs_timestamp``, ``hs_note_body``),
   associated with the contact by type 202 (note to contact)
   (https://developers.hubspot.com/docs/api-reference/crm-notes-v3/guide).

Association types: https://developers.hubspot.com/docs/api-reference/latest/crm/associations/overview.
HubSpot's single-object create takes no idempotency key, so each write is checkpointed in
the outbox item as it succeeds and a retry resumes after it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx

from frontdesk.crm_sync.call_facts import Booking, CallFacts
from frontdesk.crm_sync.destination import Delivery, PermanentDeliveryError
from frontdesk.crm_sync.http import json_body, required_id, send
from frontdesk.crm_sync.settings import HubSpotSettings

MEETING_TO_CONTACT = 200
NOTE_TO_CONTACT = 202
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def _association(contact_id: str, type_id: int) -> list[dict[str, Any]]:
    return [
        {
            "to": {"id": contact_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
        }
    ]


def _utc(moment: datetime) -> str:
    """A UTC timestamp as HubSpot's examples write it (``2026-11-26T19:00:00.000Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubSpot:
    """The HubSpot destination (name ``hubspot``)."""

    name = "hubspot"

    def __init__(self, settings: HubSpotSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.base_url,
            timeout=httpx.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
            headers={
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Accept": "application/json",
            },
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def deliver(self, item: Delivery) -> None:
        """Write the call to HubSpot, resuming after the steps already done."""
        call = CallFacts.from_record(item.payload)
        contact_id = item.progress.get("contact_id")
        if contact_id is None:
            contact_id = await self._upsert_contact(call)
            await item.checkpoint(contact_id=contact_id)
        for booking in call.bookings:
            step = f"meeting_{booking.local_id}"
            if step not in item.progress:
                await item.checkpoint(**{step: await self._log_meeting(call, booking, contact_id)})
        if "note_id" not in item.progress:
            await item.checkpoint(note_id=await self._add_note(call, contact_id))

    async def _upsert_contact(self, call: CallFacts) -> str:
        what = "HubSpot contact search"
        query = {
            "filterGroups": [
                {"filters": [{"propertyName": name, "operator": "EQ", "value": call.phone}]}
                for name in ("phone", "mobilephone")
            ],
            "properties": ["phone", "firstname", "lastname", "email"],
            "limit": 1,
        }
        found = json_body(
            await send(self._client, "POST", "/crm/v3/objects/contacts/search", what, json=query),
            what,
        )
        results = found.get("results") or []
        properties = self._contact_properties(call)
        if results and results[0].get("id"):
            contact_id = str(results[0]["id"])
            await self._update_contact(contact_id, properties)
            return contact_id
        what = "HubSpot contact create"
        response = await send(
            self._client,
            "POST",
            "/crm/v3/objects/contacts",
            what,
            json={"properties": {"phone": call.phone, **properties}},
            ok_statuses=frozenset({409}),
        )
        if response.status_code == 409:
            # Same email as an existing contact (HubSpot dedups on email): update that one.
            match = _EXISTING_ID.search(response.text)
            if match is None:
                raise PermanentDeliveryError(
                    f"{what}: POST /crm/v3/objects/contacts returned 409 without an existing "
                    f"contact id: {response.text[:300]}"
                )
            contact_id = match.group(1)
            await self._update_contact(contact_id, {"phone": call.phone, **properties})
            return contact_id
        return required_id(json_body(response, what), what, "id")

    async def _update_contact(self, contact_id: str, properties: dict[str, str]) -> None:
        if properties:
            await send(
                self._client,
                "PATCH",
                f"/crm/v3/objects/contacts/{contact_id}",
                "HubSpot contact update",
                json={"properties": properties},
            )

    @staticmethod
    def _contact_properties(call: CallFacts) -> dict[str, str]:
        """Only what the call learnt: a property the caller did not give is not blanked."""
        properties: dict[str, str] = {}
        if call.first_name:
            properties["firstname"] = call.first_name
        if call.last_name:
            properties["lastname"] = call.last_name
        if call.email:
            properties["email"] = call.email
        return properties

    async def _log_meeting(self, call: CallFacts, booking: Booking, contact_id: str) -> str:
        what = "HubSpot meeting create"
        body = {
            "properties": {
                "hs_timestamp": _utc(booking.start),
                "hs_meeting_title": call.booking_title(booking),
                "hs_meeting_body": (
                    f"Booked by phone with frontdesk (call {call.call_id})."
                    + (f" {call.summary}" if call.summary else "")
                ),
                "hs_meeting_start_time": _utc(booking.start),
                "hs_meeting_end_time": _utc(booking.end),
                "hs_meeting_outcome": "SCHEDULED",
            },
            "associations": _association(contact_id, MEETING_TO_CONTACT),
        }
        response = await send(self._client, "POST", "/crm/v3/objects/meetings", what, json=body)
        return required_id(json_body(response, what), what, "id")

    async def _add_note(self, call: CallFacts, contact_id: str) -> str:
        what = "HubSpot note create"
        moment = call.ended_at or call.started_at or datetime.now(UTC)
        body = {
            "properties": {"hs_timestamp": _utc(moment), "hs_note_body": call.note_text()},
            "associations": _association(contact_id, NOTE_TO_CONTACT),
        }
        response = await send(self._client, "POST", "/crm/v3/objects/notes", what, json=body)
        return required_id(json_body(response, what), what, "id")
