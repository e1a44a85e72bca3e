"""GoHighLevel (HighLevel / LeadConnector) API v2: a finished call becomes a contact, an
opportunity in the configured pipeline stage, an appointment on the configured calendar, and
a note with the transcript and outcome.

Requests, as documented by HighLevel (base ``https://services.leadconnectorhq.com``, header
``Authorization: Bearer <Private Integration token>`` and ``Version``):

1. ``GET /contacts/search/duplicate?locationId=&number=`` finds the contact by phone
   (https://marketplace.gohighlevel.com/docs/ghl/contacts/get-duplicate-contact.md);
2. ``PUT /contacts/{contactId}`` updates it, or ``POST /contacts/`` creates it
   (``CreateContactDto``: locationId, phone, firstName, lastName, name, email, source, tags;
   https://marketplace.gohighlevel.com/docs/ghl/contacts/create-contact);
3. ``POST /opportunities/upsert`` puts the contact's opportunity in the pipeline stage
   (``UpsertOpportunityDto``: pipelineId, locationId, contactId, name, status,
   pipelineStageId; the upsert keeps one opportunity per contact and pipeline);
4. ``POST /calendars/events/appointments`` books each appointment (``AppointmentCreateSchema``:
   calendarId, locationId, contactId, startTime, endTime, title, appointmentStatus);
   the calendars API documents ``Version: 2021-04-15``, the others ``2021-07-28``;
5. ``POST /contacts/{contactId}/notes`` adds the note (``NotesDTO``: body).

The OpenAPI specs: https://github.com/GoHighLevel/highlevel-api-docs (contacts/contacts.json,
opportunities/opportunities.json, calendars/calendars.json); an overview of auth and the
Version header: https://dev.to/arslanautomates/gohighlevel-api-a-practical-guide-to-auth-rate-limits-endpoints-and-webhooks-2026-3idi

HighLevel takes no idempotency key, so each write is checkpointed in the outbox item as it
succeeds and a retry resumes after it; the contact is found by phone before it is created,
and the opportunity is an upsert.
"""

from __future__ import annotations

from typing import Any

import httpx

from frontdesk.crm_sync.call_facts import Booking, CallFacts
from frontdesk.crm_sync.destination import Delivery
from frontdesk.crm_sync.http import json_body, required_id, send
from frontdesk.crm_sync.settings import GoHighLevelSettings

API_VERSION = "2021-07-28"
"""The ``Version`` header of the contacts and opportunities APIs."""

CALENDARS_API_VERSION = "2021-04-15"
"""The ``Version`` header the calendars API documents."""

CONTACT_SOURCE = "frontdesk phone agent"
CONTACT_TAG = "frontdesk"


class GoHighLevel:
    """The GoHighLevel destination (name ``gohighlevel``)."""

    name = "gohighlevel"

    def __init__(
        self, settings: GoHighLevelSettings, client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.base_url,
            timeout=httpx.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
            headers={
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Version": API_VERSION,
                "Accept": "application/json",
            },
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def deliver(self, item: Delivery) -> None:
        """Write the call to GoHighLevel, resuming after the steps already done."""
        call = CallFacts.from_record(item.payload)
        contact_id = item.progress.get("contact_id")
        if contact_id is None:
            contact_id = await self._upsert_contact(call)
            await item.checkpoint(contact_id=contact_id)
        if call.bookings and self.settings.pipeline_id and "opportunity_id" not in item.progress:
            await item.checkpoint(opportunity_id=await self._upsert_opportunity(call, contact_id))
        for booking in call.bookings:
            step = f"appointment_{booking.local_id}"
            if step not in item.progress:
                await item.checkpoint(**{step: await self._book(call, booking, contact_id)})
        if "note_id" not in item.progress:
            await item.checkpoint(note_id=await self._add_note(call, contact_id))

    async def _upsert_contact(self, call: CallFacts) -> str:
        what = "GoHighLevel contact lookup"
        found = json_body(
            await send(
                self._client,
                "GET",
                "/contacts/search/duplicate",
                what,
                params={"locationId": self.settings.location_id, "number": call.phone},
            ),
            what,
        )
        existing = found.get("contact")
        fields = self._contact_fields(call)
        if isinstance(existing, dict) and existing.get("id"):
            contact_id = str(existing["id"])
            if fields:
                what = "GoHighLevel contact update"
                await send(self._client, "PUT", f"/contacts/{contact_id}", what, json=fields)
            return contact_id
        what = "GoHighLevel contact create"
        body = {
            "locationId": self.settings.location_id,
            "phone": call.phone,
            **fields,
            "source": CONTACT_SOURCE,
            "tags": [CONTACT_TAG],
        }
        created = json_body(await send(self._client, "POST", "/contacts/", what, json=body), what)
        return required_id(created, what, "contact", "id")

    @staticmethod
    def _contact_fields(call: CallFacts) -> dict[str, Any]:
        """Only what the call learnt: a field the caller did not give is not blanked."""
        fields: dict[str, Any] = {}
        if call.name:
            fields["name"] = call.name
            fields["firstName"] = call.first_name
            if call.last_name:
                fields["lastName"] = call.last_name
        if call.email:
            fields["email"] = call.email
        return fields

    async def _upsert_opportunity(self, call: CallFacts, contact_id: str) -> str:
        what = "GoHighLevel opportunity upsert"
        service = next((b.service for b in call.bookings if b.service), None)
        body = {
            "pipelineId": self.settings.pipeline_id,
            "locationId": self.settings.location_id,
            "contactId": contact_id,
            "name": f"{call.display_name}: {service}" if service else call.display_name,
            "status": "open",
            "pipelineStageId": self.settings.stage_id,
        }
        data = json_body(
            await send(self._client, "POST", "/opportunities/upsert", what, json=body), what
        )
        return required_id(data, what, "opportunity", "id")

    async def _book(self, call: CallFacts, booking: Booking, contact_id: str) -> str:
        what = "GoHighLevel appointment create"
        body = {
            "calendarId": self.settings.calendar_id,
            "locationId": self.settings.location_id,
            "contactId": contact_id,
            "startTime": booking.start.isoformat(),
            "endTime": booking.end.isoformat(),
            "title": call.booking_title(booking),
            "appointmentStatus": "confirmed",
            # The slot was already checked and taken on frontdesk's own calendar.
            "ignoreFreeSlotValidation": True,
        }
        response = await send(
            self._client,
            "POST",
            "/calendars/events/appointments",
            what,
            json=body,
            headers={"Version": CALENDARS_API_VERSION},
        )
        return required_id(json_body(response, what), what, "id")

    async def _add_note(self, call: CallFacts, contact_id: str) -> str:
        what = "GoHighLevel note create"
        response = await send(
            self._client,
            "POST",
            f"/contacts/{contact_id}/notes",
            what,
            json={"body": call.note_text()},
        )
        return required_id(json_body(response, what), what, "note", "id")
