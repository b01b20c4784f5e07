"""The event emitter of Device and Call: pyee's, minus its habit of raising unheard errors.

pyee raises an ``error`` event nobody listens to, as Node does; the Twilio SDK only logs it.
A phone must not crash because an application did not subscribe to ``error``.
"""

from __future__ import annotations

import logging
from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

log = logging.getLogger(__name__)


class Emitter(AsyncIOEventEmitter):
    def _emit_handle_potential_error(self, event: str, error: Any) -> None:
        if event == "error":
            log.warning("%r: unhandled error event: %s", self, error)
