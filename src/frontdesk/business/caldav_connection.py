"""Connecting to a CalDAV server: the settings, one HTTP client per worker thread, and the
server's failures turned into :class:`~frontdesk.business.calendar.CalendarUnavailable`.

The ``caldav`` library is synchronous, so everything here runs on worker threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import caldav
from caldav.lib import error as dav_error

from frontdesk.business.calendar import CalendarUnavailable

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class CalDAVSettings:
    """Where the calendar lives and how to log in.

    ``calendar`` is the calendar's URL, or its display name (or id) among the user's
    calendars; empty means the user's first calendar.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    calendar: str | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CalDAVSettings:
        """Settings from ``FRONTDESK_CALDAV_URL`` (required), ``FRONTDESK_CALDAV_USER``,
        ``FRONTDESK_CALDAV_PASSWORD`` and ``FRONTDESK_CALDAV_CALENDAR``."""
        env = os.environ if environ is None else environ
        url = env.get("FRONTDESK_CALDAV_URL", "").strip()
        if not url:
            raise ValueError("FRONTDESK_CALDAV_URL is not set: the CalDAV server's URL is needed")
        return cls(
            url=url,
            username=env.get("FRONTDESK_CALDAV_USER") or None,
            password=env.get("FRONTDESK_CALDAV_PASSWORD") or None,
            calendar=env.get("FRONTDESK_CALDAV_CALENDAR") or None,
        )


class CalDAVConnection:
    """The way to one calendar on a CalDAV server: one ``DAVClient`` per worker thread (a
    client's HTTP session is not shared across threads), all on the one calendar, whose URL
    is looked up once."""

    def __init__(self, settings: CalDAVSettings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[caldav.DAVClient] = []
        self._calendar_url: str | None = None

    def calendar(self) -> caldav.Calendar:
        """This thread's handle on the calendar, connecting on first use."""
        calendar: caldav.Calendar | None = getattr(self._local, "calendar", None)
        if calendar is None:
            client = caldav.DAVClient(
                url=self.settings.url,
                username=self.settings.username,
                password=self.settings.password,
                timeout=self.settings.timeout_s,  # type: ignore[arg-type]
                rate_limit_handle=False,  # a 503 is reported, not slept on
            )
            with self._lock:
                self._clients.append(client)
                if self._calendar_url is None:
                    self._calendar_url = self._find_calendar(client)
                url = self._calendar_url
            calendar = client.calendar(url=url)
            self._local.calendar = calendar
        return calendar

    def _find_calendar(self, client: caldav.DAVClient) -> str:
        wanted = (self.settings.calendar or "").strip()
        if wanted.startswith(("http://", "https://")):
            return wanted
        calendars = client.principal().calendars()
        for calendar in calendars:
            segment = str(calendar.url).rstrip("/").rsplit("/", 1)[-1]
            if not wanted or wanted in (calendar.get_display_name(), segment):
                return str(calendar.url)
        names = ", ".join(repr(c.get_display_name() or str(c.url)) for c in calendars)
        what = f"no calendar named {wanted!r}" if wanted else "no calendar at all"
        raise CalendarUnavailable(
            f"user {self.settings.username!r} has {what} on {self.settings.url}"
            + (f" (there are: {names})" if names else "")
        )

    def close(self) -> None:
        """Close every client's HTTP session."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def guarded(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call ``function`` (blocking: on a worker thread), with the server's failures
        raised as :class:`CalendarUnavailable` naming the server and what went wrong."""
        where = self.settings.url
        try:
            return function(*args, **kwargs)
        except dav_error.AuthorizationError as error:
            raise CalendarUnavailable(
                f"the CalDAV server at {where} refused user {self.settings.username!r} "
                f"({error.reason})"
            ) from error
        except dav_error.DAVError as error:
            raise CalendarUnavailable(f"the CalDAV server at {where} failed: {error}") from error
        except OSError as error:  # niquests' connection errors and timeouts are OSErrors
            raise CalendarUnavailable(
                f"cannot reach the CalDAV server at {where}: {type(error).__name__}: {error}"
            ) from error
