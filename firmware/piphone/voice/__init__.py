"""Twilio-compatible Voice client: Device and Call on aiortc. Knows nothing of GPIO or ALSA."""

from .call import Call, CallDirection
from .call_states import CallStatus
from .device import Device, DeviceState
from .errors import TwilioError

__all__ = ["Call", "CallDirection", "CallStatus", "Device", "DeviceState", "TwilioError"]
