"""`python -m services.api`: run the api service (same as `barometre api`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.api.app import create_app
from services.common.settings import get_settings


def app_factory() -> FastAPI:
    """The application, built from this process's settings (uvicorn calls it with factory=True)."""
    return create_app(get_settings())


if __name__ == "__main__":
    from services.cli import main

    main(["api"])
