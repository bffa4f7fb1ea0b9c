"""Webhook delivery: one sender per webhook, fed by the durable outbox.

A sender POSTs its webhook's pending deliveries oldest first, over the daemon's one
``aiohttp.ClientSession`` (the loop they share with the MQTT sender:
:mod:`streamer.delivery.senders`). Success is a 2xx answer and nothing else. A 5xx, 408,
429, a timeout or a refused connection is retried with exponential backoff and jitter (or
after the ``Retry-After`` the receiver asked for); the sender holds back the whole webhook
meanwhile, so a dead receiver is not hammered and order is kept. Any other 4xx is logged
and moved to the dead letters. Senders are independent: a slow webhook delays nobody else.

Every request carries ``Idempotency-Key: <event_id>:<phase>`` (a camera status: its
``event_id``), unique per request that is not a retry; with a secret, also
``X-Streamer-Timestamp`` and ``X-Streamer-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<timestamp>." + body`` (for multipart requests, the body of the ``event`` part).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp

from streamer.config import WebhookConfig, mask_url
from streamer.delivery.queue import Delivery, DeliveryQueue
from streamer.delivery.senders import OutboxSender, Outcome
from streamer.events import compact_json

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 429}
#: Seconds a claim outlasts the request's ``timeout_s``.
CLAIM_MARGIN_S = 5.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Streamer-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookSender(OutboxSender):
    """Delivers one webhook's outbox entries for as long as the daemon runs."""

    def __init__(
        self, config: WebhookConfig, outbox: DeliveryQueue, session: aiohttp.ClientSession
    ) -> None:
        super().__init__(config.label, outbox, config.retry_initial_s, config.retry_max_s)
        self.config = config
        self.session = session
        # One attempt's claim outlasts its request (reading the crop is the margin).
        self.claim_s = config.timeout_s + CLAIM_MARGIN_S

    @property
    def name(self) -> str:
        """``webhook <label>``, in log messages."""
        return f"webhook {self.label}"

    def _request(self, delivery: Delivery) -> tuple[dict[str, str], Any]:
        """The headers (signed, with a secret) and what aiohttp sends as ``data``."""
        payload = dict(delivery.payload)
        crop = self._crop(payload) if self.config.attach_crop != "none" else None
        if crop is not None and self.config.attach_crop == "base64":
            payload["crop_jpeg_base64"] = base64.b64encode(crop).decode()
        body = compact_json(payload).encode()
        headers = {
            "Idempotency-Key": delivery.key,
            "X-Streamer-Event": str(payload.get("type", "plate")),
            "User-Agent": "streamer-webhook/1",
        }
        if self.config.secret:
            timestamp = str(int(time.time()))
            headers["X-Streamer-Timestamp"] = timestamp
            headers["X-Streamer-Signature"] = sign(self.config.secret, timestamp, body)
        if self.config.attach_crop == "multipart":
            form = aiohttp.FormData()
            form.add_field("event", body, content_type="application/json", filename="event.json")
            if crop is not None:
                form.add_field("crop", crop, content_type="image/jpeg", filename="crop.jpg")
            return headers, form
        headers["Content-Type"] = "application/json"
        return headers, body

    @staticmethod
    def _crop(payload: dict[str, Any]) -> bytes | None:
        path = payload.get("crop_path")
        if not path:
            return None
        try:
            return Path(str(path)).read_bytes()
        except OSError:  # removed by retention: send the event without it
            return None

    async def post(self, delivery: Delivery) -> Outcome:
        """One attempt; classifies the answer as delivered, retry later, or refused."""
        headers, data = self._request(delivery)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with self.session.post(
                self.config.url, data=data, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TimeoutError:
            return Outcome(False, f"no answer within {self.config.timeout_s:g} s")
        except aiohttp.ClientError as error:
            # An error may quote the URL (InvalidURL, ClientResponseError): its secrets
            # are masked before it is logged or stored as the delivery's last error.
            return Outcome(False, mask_url(f"{type(error).__name__}: {error}"))
        if 200 <= status < 300:
            return Outcome(True)
        if status >= 500 or status in RETRYABLE_STATUS:
            return Outcome(False, f"HTTP {status}", retry_after)
        return Outcome(False, f"HTTP {status}", permanent=True)
