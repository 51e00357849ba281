"""Whether tasks can be sent to the broker now, asked before work that would queue many of them."""

from __future__ import annotations

from kombu.exceptions import OperationalError as BrokerUnavailable


def broker_unreachable() -> str | None:
    """Why the task broker cannot be reached, naming it without its password; None when it can be, or
    when tasks run in-process (no broker)."""
    from fashion_search.celery import app

    if app.conf.task_always_eager:
        return None
    connection = app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=1)
    except (BrokerUnavailable, OSError) as exc:
        return f"cannot reach the task broker at {connection.as_uri()}: {exc}"
    finally:
        connection.release()
    return None
