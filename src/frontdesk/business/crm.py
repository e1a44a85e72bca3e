"""The CRM: who called, and how it went. The default one lives in the app database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.store.db import Database
from frontdesk.store.models import OUTCOMES, Call, Contact, check_choice, normalize_phone
from frontdesk.store.records import UnknownCallError, apply_outcome


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """A contact as the CRM knows them (``phone`` normalised, see ``normalize_phone``)."""

    id: int
    phone: str
    name: str | None = None
    email: str | None = None
    last_outcome: str | None = None
    notes: str | None = None


class CRM(Protocol):
    """Where contacts and call outcomes are written."""

    async def find_contact(self, phone: str) -> ContactInfo | None:
        """The contact with this phone number, if any."""
        ...

    async def get_contact(self, contact_id: int) -> ContactInfo | None:
        """The contact with this id, if any (a booking names its caller by id)."""
        ...

    async def upsert_contact(
        self,
        phone: str,
        name: str | None = None,
        email: str | None = None,
        notes: str | None = None,
    ) -> ContactInfo:
        """Create the contact or update the fields given (``None`` leaves a field as is)."""
        ...

    async def log_outcome(self, phone: str, call_id: str, outcome: str, summary: str) -> None:
        """Record how the call with this contact ended."""
        ...


def _info(contact: Contact) -> ContactInfo:
    return ContactInfo(
        id=contact.id,
        phone=contact.phone,
        name=contact.name,
        email=contact.email,
        last_outcome=contact.last_outcome,
        notes=contact.notes,
    )


def _get_or_create(session: Session, phone: str) -> Contact:
    contact = session.scalar(select(Contact).where(Contact.phone == phone))
    if contact is None:
        contact = Contact(phone=phone)
        session.add(contact)
        session.flush()
    return contact


class SQLCRM:
    """Contacts in the app database; outcomes go to the contact and to the call row (the
    transcript itself is the call's turns)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def find_contact(self, phone: str) -> ContactInfo | None:
        """The contact with this phone number (any formatting), if any."""
        return await self.db.run(self._find, normalize_phone(phone))

    def _find(self, phone: str) -> ContactInfo | None:
        with self.db.session() as session:
            contact = session.scalar(select(Contact).where(Contact.phone == phone))
            return _info(contact) if contact else None

    async def get_contact(self, contact_id: int) -> ContactInfo | None:
        """The contact with this id, if any."""
        return await self.db.run(self._get, contact_id)

    def _get(self, contact_id: int) -> ContactInfo | None:
        with self.db.session() as session:
            contact = session.get(Contact, contact_id)
            return _info(contact) if contact else None

    async def upsert_contact(
        self,
        phone: str,
        name: str | None = None,
        email: str | None = None,
        notes: str | None = None,
    ) -> ContactInfo:
        """Create or update the contact; new ``notes`` are appended to earlier ones."""
        return await self.db.run(self._upsert, normalize_phone(phone), name, email, notes)

    def _upsert(
        self, phone: str, name: str | None, email: str | None, notes: str | None
    ) -> ContactInfo:
        # Exclusive, so two calls from one number cannot both create the contact.
        with self.db.exclusive_session() as session:
            contact = _get_or_create(session, phone)
            if name:
                contact.name = name.strip()
            if email:
                contact.email = email.strip()
            if notes and notes.strip():
                note = notes.strip()
                existing = contact.notes or ""
                # Keep the history of notes; a repeated note is not added twice.
                if not existing.endswith(note):
                    contact.notes = f"{existing}\n{note}" if existing else note
            session.flush()
            return _info(contact)

    async def log_outcome(self, phone: str, call_id: str, outcome: str, summary: str) -> None:
        """Set the contact's last outcome and the call's outcome and summary, and link the
        call to the contact."""
        check_choice("outcome", outcome, OUTCOMES)
        await self.db.run(self._log_outcome, normalize_phone(phone), call_id, outcome, summary)

    def _log_outcome(self, phone: str, call_id: str, outcome: str, summary: str) -> None:
        with self.db.exclusive_session() as session:
            call = session.get(Call, call_id)
            if call is None:
                raise UnknownCallError(f"no call with id {call_id!r}")
            contact = _get_or_create(session, phone)
            contact.last_outcome = outcome
            call.contact_id = contact.id
            apply_outcome(call, outcome, upgrade_only=False)
            call.summary = summary
