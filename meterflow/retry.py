"""The one retry/back-off policy: exponential with jitter, from tenacity, interruptible by a stop event.

Every component that waits for something to come back (the database for the decoder, a serial port for
a gateway source, the broker for a resend) uses it, so all of them back off alike and stop promptly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity

from meterflow.logs import ctx, get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Waits initial, 2*initial, 4*initial, ... up to maximum seconds (plus up to `initial` of jitter)."""

    initial: float = 0.2
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based), for callers that schedule retries."""
        return float(min(self.maximum, self.initial * 2 ** max(0, min(attempt - 1, 30))))

    def retrying(self, what: str, retry_on: tuple[type[BaseException], ...],
                 stop_event: threading.Event | None = None,
                 give_up_after: float | None = None,
                 on_retry: Callable[[BaseException, float], None] | None = None,
                 **log_context: Any) -> tenacity.Retrying:
        """A tenacity loop: `for attempt in policy.retrying(...): with attempt: ...`.

        Retries `retry_on` exceptions; logs each wait as a warning (what failed, the error, the wait);
        stops when `stop_event` is set or after `give_up_after` seconds (then the last error is raised)."""
        stops: list[tenacity.stop.stop_base] = []
        if stop_event is not None:
            stops.append(tenacity.stop_when_event_set(stop_event))
        if give_up_after is not None:
            stops.append(tenacity.stop_after_delay(give_up_after))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            if on_retry is not None and exc is not None:
                on_retry(exc, wait)
            first = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else repr(exc)
            log.warning(f"{what} failed; retrying", extra=ctx(error=first, retry_s=round(wait, 2),
                                                            attempt=state.attempt_number, **log_context))

        return tenacity.Retrying(
            wait=tenacity.wait_exponential(multiplier=self.initial, max=self.maximum)
            + tenacity.wait_random(0, self.initial),
            retry=tenacity.retry_if_exception_type(retry_on),
            stop=tenacity.stop_any(*stops) if stops else tenacity.stop_never,
            sleep=_interruptible(stop_event) if stop_event is not None else tenacity.nap.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


def _interruptible(event: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        event.wait(seconds)

    return sleep


#: reconnecting to PostgreSQL, reopening a port, resending to a broker
DEFAULT = Backoff(0.2, 5.0)
PORTS = Backoff(0.5, 30.0)
