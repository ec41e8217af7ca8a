"""Suppress a frame seen again within a window: T1 meters repeat every 8-16 s and dongles overlap.

The window is measured on the frame's own receive time, not the wall clock, so a replay of 30 days in
seconds is deduplicated exactly as it would be live. A repeat does not extend the window: a meter that
sends the same telegram for hours is still published once per window, so downstream sees it alive.
"""

from __future__ import annotations

from collections import OrderedDict


class Deduplicator:
    """Remembers frame content -> first receive time, for at most `window_s` and `max_entries` frames."""

    def __init__(self, window_s: float, max_entries: int = 500_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._latest = float("-inf")

    def is_new(self, data: bytes, received_at: float) -> bool:
        """True when the frame should be published; False when it repeats one inside the window."""
        if self.window_s <= 0:
            return True
        first = self._seen.get(data)
        if first is not None and abs(received_at - first) < self.window_s:
            return False
        if first is not None:
            del self._seen[data]
        self._seen[data] = received_at
        if received_at > self._latest:
            self._latest = received_at
            self._expire()
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return True

    def _expire(self) -> None:
        horizon = self._latest - self.window_s
        seen = self._seen
        while seen:
            _data, first = next(iter(seen.items()))
            if first > horizon:
                break
            seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
