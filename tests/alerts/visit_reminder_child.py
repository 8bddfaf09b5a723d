"""A real visit-reminder worker process for the SIGKILL test (test_visit_reminder_worker.py).

argv: registry URL, clock file (ISO time the injected clock reads), delivery log, worker id.
The notifiers are the escalation child's: each message's idempotency key is appended to the
delivery log (the "channel"), and while ``<log>.hold`` exists the send then blocks.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from alerts.visit_reminders import VisitReminderWorker
from registry.db import create_engine_for
from tests.registry.escalation_child import LogNotifier


def main() -> None:
    url, clock_file, log, worker_id = sys.argv[1:5]
    clock_path, log_path = Path(clock_file), Path(log)
    worker = VisitReminderWorker(
        create_engine_for(url),
        notifiers={c: LogNotifier(c, log_path) for c in ("inbox", "sms")},
        clock=lambda: datetime.fromisoformat(clock_path.read_text().strip()),
        worker_id=worker_id,
        sleep=lambda _s: None,
    )
    Path(f"{log}.ready").touch()
    while True:
        worker.run_once()
        time.sleep(0.05)


if __name__ == "__main__":
    main()
