"""The dial plan and the registrations it routes to.

``To`` may be ``client:alice``, ``alice``, a number in the dial plan, or a service line.
Several devices may register one identity: a call to it rings them all (a fork).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..voice.identity import is_identity
from .config import ExchangeConfig

S = TypeVar("S")


@dataclass(frozen=True)
class Route:
    kind: str  # "client" or "line"
    target: str  # identity, or line name

    @property
    def to(self) -> str:
        """``To`` as the callee sees it."""
        return f"client:{self.target}" if self.kind == "client" else self.target


class DialPlan:
    def __init__(self, config: ExchangeConfig) -> None:
        self.lines = dict(config.lines)
        self.numbers = dict(config.numbers)

    def resolve(self, to: str | None) -> Route | None:
        if not to:
            return None
        to = to.strip()
        if to in self.lines:
            return Route("line", self.lines[to])
        if to in self.numbers:
            return Route("client", self.numbers[to])
        if to.startswith("client:"):
            identity = to[len("client:"):]
            return Route("client", identity) if is_identity(identity) else None
        if to.replace("+", "").isdigit():
            return None  # a number that is not in the dial plan
        return Route("client", to) if is_identity(to) else None


class Registrations(Generic[S]):
    """identity -> registered sessions, in registration order."""

    def __init__(self) -> None:
        self._by_identity: dict[str, list[S]] = defaultdict(list)

    def add(self, identity: str, session: S) -> None:
        if session not in self._by_identity[identity]:
            self._by_identity[identity].append(session)

    def remove(self, identity: str, session: S) -> None:
        sessions = self._by_identity.get(identity)
        if sessions and session in sessions:
            sessions.remove(session)
            if not sessions:
                del self._by_identity[identity]

    def of(self, identity: str) -> list[S]:
        return list(self._by_identity.get(identity, ()))

    def count(self, identity: str) -> int:
        return len(self._by_identity.get(identity, ()))
