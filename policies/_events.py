"""How the events dispatcher delivers committed events to subscribers, and how long a
resource keeps its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsPolicy:
    """The dispatcher's delivery rules (``actors.Subscriptions``, docs/events.md).

    Attributes:
        max_in_flight: most events one delivery call carries to a subscriber; a
            partition (one consumer group, one resource) has at most one call in flight,
            so this bounds what a slow subscriber holds (backpressure). Default 100.
        poll_interval: how often the dispatcher looks for new events while a resource
            is quiet. Default 5 ms.
        retry_backoff: the wait before a failed delivery (handler error, replica
            unreachable) is tried again, doubled per failure up to ``max_backoff``.
            Default 100 ms.
        max_backoff: the longest wait between retries of one partition. Default 5 s.
        delivery_timeout: how long a delivery call runs before it is shown and
            counted as slow; it is never sent again while it may still run (it would
            run the batch's handlers twice, or on two replicas at once), only once it
            fails. Default 60 s.
        retention: events are kept at least this long after their write committed,
            and until every consumer group's checkpoint passed them. Default 1 day.
        trim_every: how often the dispatcher asks resources to delete events under the
            retention rule. Default 1 minute.
        trim_batch: most events one trim pass deletes per resource. Default 5,000.
        max_delivery_attempts: an event whose handler failed this many times in a row is
            moved to the group's dead letters and the partition goes on past it (a
            contract-version refusal is never counted: it waits for a replica that
            speaks the version). ``None``: retry forever, the partition stopped at the
            event. Default 5.
        dead_letter_retention: a dead letter is kept this long after it was dead-lettered
            (or until redelivered, or its group forgotten). Default 7 days.
    """

    max_in_flight: int = 100
    poll_interval: timedelta = timedelta(milliseconds=5)
    retry_backoff: timedelta = timedelta(milliseconds=100)
    max_backoff: timedelta = timedelta(seconds=5)
    delivery_timeout: timedelta = timedelta(seconds=60)
    retention: timedelta = timedelta(days=1)
    trim_every: timedelta = timedelta(minutes=1)
    trim_batch: int = 5_000
    max_delivery_attempts: int | None = 5
    dead_letter_retention: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        for name in (
            "max_in_flight", "poll_interval", "retry_backoff", "max_backoff",
            "delivery_timeout", "retention", "trim_every", "trim_batch", "dead_letter_retention",
        ):  # fmt: skip
            value = getattr(self, name)
            if (value <= timedelta(0)) if isinstance(value, timedelta) else value < 1:
                raise ValueError(f"EventsPolicy.{name} must be positive")
        attempts = self.max_delivery_attempts
        if attempts is not None and (type(attempts) is not int or attempts < 1):
            raise ValueError("EventsPolicy.max_delivery_attempts must be None or an int >= 1")

    def backoff(self, failures: int) -> timedelta:
        """The wait after ``failures`` consecutive failed deliveries of a partition."""
        grown: timedelta = self.retry_backoff * (2 ** max(failures - 1, 0))
        return min(grown, self.max_backoff)
