"""Prometheus metrics of one service instance (a registry per app, no globals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from domain.edit import EditState

if TYPE_CHECKING:
    from storage.db import Database

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Counters and histograms the service updates; rendered at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.edit_events = Counter(
            "bot_edit_events_total",
            "Edit lifecycle events",
            ["event", "provider"],
            registry=self.registry,
        )
        self.edits_by_state = Gauge(
            "bot_edits",
            "Edits in the database by state and provider",
            ["state", "provider"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "bot_queue_depth",
            "Work waiting: submit (queued edits), provider (tasks running at the provider), "
            "delivery (results not yet sent), notify (failures the user was not told yet), "
            "telegram_updates (updates received, not yet handled)",
            ["queue"],
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "bot_provider_calls_total",
            "Provider API calls",
            ["family", "method", "outcome"],
            registry=self.registry,
        )
        self.provider_latency = Histogram(
            "bot_provider_latency_seconds",
            "Provider API call latency",
            ["family", "method"],
            registry=self.registry,
        )
        self.callbacks = Counter(
            "bot_callbacks_total",
            "Provider callbacks by result: applied, duplicate, or why they were refused",
            ["provider", "result"],
            registry=self.registry,
        )
        self.delivery_failures = Counter(
            "bot_delivery_failures_total",
            "Failed deliveries to Telegram",
            ["provider"],
            registry=self.registry,
        )
        self.submit_latency = Histogram(
            "bot_submit_seconds",
            "Bot time from taking an edit to the provider's task id",
            registry=self.registry,
        )
        self.deliver_latency = Histogram(
            "bot_deliver_seconds",
            "Bot time from a finished task to the result sent",
            registry=self.registry,
        )
        self.database_errors = Counter(
            "bot_database_errors_total",
            "Database errors by kind: connections lost or refused, locks, disk, bad SQL "
            "(conflicts the code expects, such as unique-key races, are not counted)",
            ["kind"],
            registry=self.registry,
        )
        self.webhook_ok = Gauge(
            "bot_webhook_ok",
            "Webhook mode: 1 when the last check found Telegram's webhook set to this bot, "
            "0 when not set or the check failed",
            registry=self.registry,
        )
        self.provider_credits = Gauge(
            "bot_provider_credits",
            "The provider account's credit balance, as last reported",
            ["account"],
            registry=self.registry,
        )
        self.background_tasks = Gauge(
            "bot_background_tasks", "Background tasks in flight", registry=self.registry
        )

    def observe_edit(self, event: str, fields: Mapping[str, Any]) -> None:
        provider = str(fields.get("provider", ""))
        self.edit_events.labels(event=event, provider=provider).inc()
        if event == "delivery_failed":
            self.delivery_failures.labels(provider=provider).inc()
        seconds = fields.get("seconds")
        if isinstance(seconds, float):
            if event == "submitted":
                self.submit_latency.observe(seconds)
            elif event == "delivered":
                self.deliver_latency.observe(seconds)

    def observe_call(self, family: str, method: str, seconds: float, outcome: str) -> None:
        self.provider_calls.labels(family=family, method=method, outcome=outcome).inc()
        self.provider_latency.labels(family=family, method=method).observe(seconds)

    async def refresh(self, db: Database) -> None:
        """Set the gauges that count database rows, all at once, from one set of counts."""
        counts = await db.edits.count_by_state_and_provider()
        unnotified = await db.edits.count_unnotified()
        pending_updates = await db.updates.count_pending()

        def total(*states: EditState) -> int:
            return sum(count for (state, _), count in counts.items() if state in states)

        self.edits_by_state.clear()  # states that emptied must not keep their last value
        for (state, provider), count in counts.items():
            self.edits_by_state.labels(state=state, provider=provider).set(count)
        queues = {
            "submit": total(EditState.QUEUED),
            "provider": total(EditState.SUBMITTING, EditState.SUBMITTED),
            "delivery": total(EditState.SUCCEEDED),
            "notify": unnotified,
            "telegram_updates": pending_updates,
        }
        for queue, depth in queues.items():
            self.queue_depth.labels(queue=queue).set(depth)

    def watch_database(self, db: Database) -> None:
        """Count the errors the database answers with."""

        def failed(error: BaseException) -> None:
            # SQLAlchemy's wrapper names the kind alike on SQLite and PostgreSQL.
            if not isinstance(error, sa.exc.IntegrityError):
                self.database_errors.labels(kind=type(error).__name__).inc()

        db.watch_errors(failed)

    def render(self) -> bytes:
        return generate_latest(self.registry)
