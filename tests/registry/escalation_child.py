"""A real escalation worker process for the SIGKILL tests (run by test_escalation_sigkill.py).

argv: registry URL, clock file (ISO time the injected clock reads), delivery log, worker id.
The notifier appends each message's idempotency key to the delivery log (the "channel") and,
while a file ``<log>.hold`` exists, then sleeps: the test kills the process mid-notification.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path

from alerts.escalation import EscalationWorker
from alerts.notify.base import Message, Receipt
from alerts.recipients import registry_message_prefs, registry_recipients
from registry.db import create_engine_for


class LogNotifier:
    def __init__(self, channel: str, log: Path) -> None:
        self.channel = channel
        self._log = log

    def send(self, message: Message) -> Receipt:
        with self._log.open("a") as out:
            out.write(message.idempotency_key + "\n")
            out.flush()
            os.fsync(out.fileno())
        while Path(f"{self._log}.hold").exists():
            time.sleep(0.05)
        return Receipt(self.channel, message.idempotency_key)


def main() -> None:
    url, clock_file, log, worker_id = sys.argv[1:5]
    clock_path, log_path = Path(clock_file), Path(log)
    worker = EscalationWorker(
        create_engine_for(url),
        notifiers={c: LogNotifier(c, log_path) for c in ("inbox", "sms", "voice", "wechat")},
        recipients=registry_recipients,
        # As the worker wiring does (alerts.assembly): the patients' quiet hours and channel.
        message_prefs=registry_message_prefs,
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
