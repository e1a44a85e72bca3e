"""The phone server: Twilio webhooks and Media Streams in front of an Agent."""

from frontdesk.server.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
