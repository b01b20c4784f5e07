"""TwilioError and the table of the error codes piphone meets (texts after Twilio's catalogue)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PiphoneError


@dataclass(frozen=True)
class ErrorInfo:
    name: str
    message: str
    description: str
    explanation: str
    causes: tuple[str, ...] = ()
    solutions: tuple[str, ...] = ()


# Code -> catalogue entry. Names follow the SDK's error classes.
CODES: dict[int, ErrorInfo] = {
    # What the SDK's Device reports when the edge refuses a token (wire codes 31204, 31205,
    # 31201 below are kept as the original_error).
    20101: ErrorInfo(
        "AccessTokenInvalid", "Invalid access token", "Invalid access token",
        "Twilio was unable to validate your Access Token",
        ("The token was signed with another secret, is malformed, or names another account.",),
        ("Mint a new token with the exchange's (or Twilio's) API key and call update_token().",),
    ),
    20104: ErrorInfo(
        "AccessTokenExpired", "Access token expired or expiration date invalid",
        "Access token expired or expiration date invalid",
        "The Access Token provided to the Twilio API has expired, the expiration time "
        "specified in the token was invalid, or the TTL was over 24 hours.",
        ("The token's exp is in the past.",),
        ("Refresh the token (see tokenWillExpire) and call update_token().",),
    ),
    20151: ErrorInfo(
        "AuthenticationFailed", "Authentication Failed",
        "Authentication Failed", "The Authentication with the provided JWT failed",
    ),
    31000: ErrorInfo(
        "UnknownError", "Unknown Error", "Unknown Error",
        "An unknown error has occurred. See error details for more information.",
    ),
    31002: ErrorInfo(
        "ConnectionDeclinedError", "Connection declined", "Connection declined",
        "Connection declined.",
        ("The access token does not allow outgoing calls (no voice grant).",),
        ("Mint the token with a voice grant (an outgoing application SID at Twilio).",),
    ),
    31005: ErrorInfo(
        "ConnectionError", "Connection error", "Connection error",
        "A connection error occurred during the call.",
        ("The call was refused or could not be set up by the server.",),
        ("Check the error message for the server's reason and retry.",),
    ),
    31008: ErrorInfo(
        "CallCancelledError", "Call cancelled", "Call cancelled",
        "Unable to answer because the call has ended.",
        ("The incoming call was cancelled because it was not answered in time, "
         "or it was accepted or rejected by another application instance.",),
    ),
    31009: ErrorInfo(
        "TransportError", "No transport available to send or receive messages",
        "Transport error",
        "No transport available to send or receive messages.",
        ("The signaling connection is down.",),
        ("Wait for the device to reconnect; check the network.",),
    ),
    31100: ErrorInfo(
        "MalformedRequestError", "The request had malformed syntax.", "Malformed request",
        "The request had malformed syntax.",
        ("A frame or SDP did not have the expected shape.",),
    ),
    31201: ErrorInfo(
        "AuthorizationError", "Authorization error", "Generic unknown error",
        "An error occurred during authentication.",
    ),
    31204: ErrorInfo(
        "InvalidJWTTokenError", "Invalid JWT token", "Invalid JWT token",
        "The access token is not a valid JWT, or its signature or claims are wrong.",
        ("The token was signed with another secret, or is malformed.",),
        ("Mint a new token with the exchange's (or Twilio's) API key and secret.",),
    ),
    31205: ErrorInfo(
        "JWTTokenExpiredError", "JWT token expired", "JWT token expired",
        "The access token provided has expired or has an invalid expiration date.",
        ("The token's exp is in the past.",),
        ("Refresh the token and call update_token().",),
    ),
    31206: ErrorInfo(
        "RateExceededError", "Rate exceeded authorized limit",
        "Rate exceeded authorized limit", "The request performed exceeds the authorized limit.",
        ("Too many sockets, registrations, malformed frames or call messages from one client, "
         "address or identity.",),
        ("Close unused Devices; the exchange's limits are in exchange.toml [limits].",),
    ),
    31207: ErrorInfo(
        "JWTTokenExpirationTooLongError", "JWT token expiration too long",
        "JWT token expiration too long",
        "The access token lives longer than 24 hours from its issue (iat/nbf) to exp "
        "(Twilio's REST and IAM APIs call this 20157).",
        ("The token was minted with a ttl over 86400 seconds.",),
        ("Mint tokens with a ttl of at most 86400 seconds and refresh them.",),
    ),
    31208: ErrorInfo(
        "UserMediaError", "User denied access to user media", "Media access denied",
        "The audio device could not be opened.",
    ),
    31209: ErrorInfo(
        "ReconnectAttemptError", "Reconnect attempt is not authorized.",
        "Reconnect attempt is not authorized.",
        "The server refused to resume the call with this reconnect token.",
        ("The call is another identity's, or its own connection is still open.",),
    ),
    31210: ErrorInfo(
        "CallMessageEventTypeInvalidError", "Call Message Event Type is invalid.",
        "Call Message Event Type is invalid.",
        "The Call Message Event Type is invalid and is not understood by Twilio Voice.",
        ("The Call Message Event Type is invalid and is not understood by Twilio Voice.",),
        ("Ensure the Call Message Event Type is Valid and understood by Twilio Voice and try "
         "again.",),
    ),
    31212: ErrorInfo(
        "PayloadSizeExceededError", "Call Message Event Payload size exceeded authorized limit.",
        "Call Message Event Payload size exceeded authorized limit.",
        "The request performed to send a Call Message Event exceeds the payload size "
        "authorized limit",
        ("The payload size of Call Message Event exceeds the authorized limit.",),
        ("Reduce payload size of Call Message Event to be within the authorized limit and "
         "try again.",),
    ),
    31402: ErrorInfo(
        "AcquisitionFailedError", "Could not acquire user media", "Media acquisition failed",
        "The audio source could not be started.",
    ),
    31404: ErrorInfo(
        "NotFound", "Not Found", "Not Found",
        "The server has not found anything matching the request.",
        ("The dialled identity or number is not in the dial plan.",),
        ("Check the number, or add it to the exchange's dial plan.",),
    ),
    31480: ErrorInfo(
        "TemporarilyUnavailable", "Temporarily Unavailable", "Temporarily Unavailable",
        "The callee's end system was contacted successfully, but the callee is currently "
        "unavailable or did not answer.",
        ("Nobody answered within the ring timeout, or the callee is not registered.",),
    ),
    31486: ErrorInfo(
        "BusyHere", "Busy Here", "Busy Here",
        "The callee is busy.",
        ("The callee is already in a call, or the exchange is at capacity.",),
    ),
    31603: ErrorInfo(
        "Decline", "Decline", "Decline",
        "The callee does not wish to participate in the call.",
        ("The callee rejected the call.",),
    ),
    53000: ErrorInfo(
        "SignalingConnectionError", "Raised whenever a signaling connection error occurs",
        "Signaling connection error",
        "Raised whenever a signaling connection error occurs.",
    ),
    53001: ErrorInfo(
        "SignalingConnectionDisconnectedError",
        "Raised whenever the signaling connection is unexpectedly disconnected.",
        "Signaling connection disconnected",
        "Raised whenever the signaling connection is unexpectedly disconnected.",
        ("The network connection was lost or the server closed the socket.",),
        ("The call reconnects by itself when the network comes back.",),
    ),
    53405: ErrorInfo(
        "MediaConnectionError", "Raised by the Client or Server whenever a media connection fails.",
        "Media connection failed",
        "Raised by the Client or Server whenever a media connection fails.",
        ("The ICE connection failed or no media arrived.",),
        ("Check the network path and any firewall between the device and the server.",),
    ),
}


class TwilioError(PiphoneError):
    """An error with the same fields as the SDK's TwilioError."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        original_error: object | None = None,
    ) -> None:
        info = CODES.get(code, CODES[31000])
        self.code = code
        self.name = info.name
        self.description = info.description
        self.explanation = info.explanation
        self.causes = list(info.causes)
        self.solutions = list(info.solutions)
        self.message = message or info.message
        self.original_error = original_error
        super().__init__(f"{self.name} ({code}): {self.message}")

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_frame(cls, payload: dict[str, Any]) -> TwilioError:
        """The error a server's frame carries (``{"error": {"code", "message"}}``); 31005
        when it names no code."""
        error = payload.get("error") or {}
        code, message = error.get("code"), error.get("message")
        return cls(code if isinstance(code, int) else 31005,
                   message if isinstance(message, str) else None, original_error=error)


# Wire codes of a refused token -> the error the SDK's Device reports for them (31207 as the
# SDK reports it with enableImprovedSignalingErrorPrecision).
TOKEN_REFUSALS = {31201: 20151, 31204: 20101, 31205: 20104, 31207: 31207}


def server_error(error: dict[str, Any]) -> tuple[int, TwilioError]:
    """The wire code of an ``error`` frame's ``error`` and the error the SDK's Device reports
    for it: a refused token as AccessTokenInvalid (20101), AccessTokenExpired (20104) or
    AuthenticationFailed (20151), the wire code kept in ``original_error``."""
    code, message = error.get("code"), error.get("message")
    wire_code = code if isinstance(code, int) else 31000
    message = message if isinstance(message, str) else None
    return wire_code, TwilioError(TOKEN_REFUSALS.get(wire_code, wire_code), message,
                                  original_error=error)
