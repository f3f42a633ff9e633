"""`python -m services.scoring`: run the scoring worker (same as `barometre scoring`)."""

from __future__ import annotations

import logging
import time

from services.common.settings import Settings, get_settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Run the Faust worker in the foreground until SIGTERM/SIGINT (then it stops cleanly)."""
    from faust import Worker

    from services.common.kafka import ensure_topics
    from services.scoring.app import create_app

    # Faust subscribes to the topics that exist when it starts and ignores missing ones for good: make
    # sure they exist first (waiting for Kafka if it is not up yet).
    delay = 1.0
    while True:
        try:
            ensure_topics(settings)
            break
        except Exception as exc:
            log.warning("Kafka topics not ready (retrying in %.0fs): %s", delay, exc)
            time.sleep(delay)
            delay = min(2 * delay, 30.0)
    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False)
    # Faust configures logging itself; keep aiokafka's and Faust's chatter to warnings.
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    worker.execute_from_commandline()


if __name__ == "__main__":
    run_worker(get_settings())
