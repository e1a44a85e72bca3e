"""The business side: opening hours, the calendar, the CRM and the front-desk tools."""

from frontdesk.business.calendar import Booking, Calendar, Slot, SlotTaken, SQLCalendar
from frontdesk.business.crm import CRM, SQLCRM, ContactInfo
from frontdesk.business.hours import BusinessHours
from frontdesk.business.toolset import (
    CallAction,
    FrontDeskEnv,
    HangUp,
    Transfer,
    frontdesk_tools,
)

__all__ = [
    "CRM",
    "SQLCRM",
    "Booking",
    "BusinessHours",
    "Calendar",
    "CallAction",
    "ContactInfo",
    "FrontDeskEnv",
    "HangUp",
    "SQLCalendar",
    "Slot",
    "SlotTaken",
    "Transfer",
    "frontdesk_tools",
]
