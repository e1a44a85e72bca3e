"""Sending finished calls to other systems: GoHighLevel, HubSpot and a signed webhook,
through a durable outbox in the app database (retried with backoff, never lost)."""

from frontdesk.crm_sync.destination import (
    Delivery,
    DeliveryError,
    Destination,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from frontdesk.crm_sync.gohighlevel import GoHighLevel
from frontdesk.crm_sync.hubspot import HubSpot
from frontdesk.crm_sync.settings import (
    GoHighLevelSettings,
    HubSpotSettings,
    SyncSettings,
    WebhookSettings,
)
from frontdesk.crm_sync.sync import (
    CALL_COMPLETED,
    CallInProgressError,
    CallSync,
    SyncedCallStore,
    build_destinations,
)
from frontdesk.crm_sync.webhook import SignedWebhook, sign, verify_signature
from frontdesk.crm_sync.worker import OutboxWorker

__all__ = [
    "CALL_COMPLETED",
    "CallInProgressError",
    "CallSync",
    "Delivery",
    "DeliveryError",
    "Destination",
    "GoHighLevel",
    "GoHighLevelSettings",
    "HubSpot",
    "HubSpotSettings",
    "OutboxWorker",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "SignedWebhook",
    "SyncSettings",
    "SyncedCallStore",
    "WebhookSettings",
    "build_destinations",
    "sign",
    "verify_signature",
]
