"""Where the API and `lab dlq` send the audit events they cause: one function to re-point.

Enqueues (`enqueued`) and DLQ requeues (`requeued`) are recorded through a `Recorder`;
`audit_recorder` is the only place that decides where those events go. Today that is
the write-behind `AuditWriter` of `scheduler.store`: buffered, written in batches about
once a second and on shutdown, best-effort (a process killed with events buffered loses
them, never a job).
"""

from collections.abc import Callable

from scheduler.domain import Job
from scheduler.store import AuditEvent, AuditWriter

Recorder = Callable[[AuditEvent, Job], None]


def audit_recorder(audit: AuditWriter) -> Recorder:
    """Return a recorder that buffers each event in `audit`."""

    def record(event: AuditEvent, job: Job) -> None:
        audit.record(event, job)

    return record
