"""`python -m services.ingest`: run the ingest service (same as `barometre ingest`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.settings import get_settings
from services.ingest.app import create_app


def app_factory() -> FastAPI:
    """The application, built from this process's settings (uvicorn calls it with factory=True)."""
    return create_app(get_settings())


if __name__ == "__main__":
    from services.cli import main

    main(["ingest"])
