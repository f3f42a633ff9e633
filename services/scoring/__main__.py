"""`python -m services.scoring`: run the scoring worker (same as `barometre scoring`)."""

from __future__ import annotations

import logging

from services.common.settings import Settings, get_settings


def run_worker(settings: Settings) -> None:
    """Run the Faust worker in the foreground until SIGTERM/SIGINT (then it stops cleanly)."""
    from faust import Worker

    from services.scoring.app import create_app

    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False)
    # Faust configures logging itself; keep aiokafka's and Faust's chatter to warnings.
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    worker.execute_from_commandline()


if __name__ == "__main__":
    run_worker(get_settings())
