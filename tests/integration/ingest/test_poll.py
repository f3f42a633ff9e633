"""`barometre poll` as a user runs it: registered Bluesky and Mastodon accounts are read from a local
server speaking those APIs (there is no internet here) and their snapshots land on the real topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from services.common.clickhouse import make_client
from services.common.names import Platform
from services.common.reference import AccountRecord
from services.common.registry import user_version, write_accounts
from services.common.settings import Settings
from tests.integration.ingest.helpers import consume_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

FIXTURES = Path(__file__).parents[2] / "unit" / "ingest" / "sources" / "poller_fixtures"
FOLLOWERS = {"grenoble.fr": 5400, "lyon.fr": 12000}


class Platforms(BaseHTTPRequestHandler):
    """Bluesky's getProfiles and Mastodon's accounts/lookup, from the documented response shapes."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/xrpc/app.bsky.actor.getProfiles":
            template = json.loads((FIXTURES / "bluesky_get_profiles.json").read_text())["profiles"][0]
            profiles = [
                {
                    **template,
                    "did": f"did:plc:{actor.replace('.', '')}",
                    "handle": actor,
                    "followersCount": FOLLOWERS[actor],
                }
                for actor in query["actors"]
                if actor in FOLLOWERS
            ]
            self._send(200, {"profiles": profiles})
        elif url.path == "/api/v1/accounts/lookup":
            account = json.loads((FIXTURES / "mastodon_account.json").read_text())
            if query["acct"][0] in ("grenoble", "grenoble@social.example"):
                self._send(
                    200, {**account, "username": "grenoble", "acct": "grenoble", "followers_count": 777}
                )
            else:
                self._send(404, {"error": "Record not found"})
        else:
            self._send(404, {"error": "no such route"})

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def platforms() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Platforms)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_poll_once_publishes_registered_accounts(app_settings: Settings, platforms: str) -> None:
    ch = make_client(app_settings)
    write_accounts(
        ch,
        app_settings.clickhouse_database,
        [
            AccountRecord("COM:38185", Platform.BLUESKY, "bluesky:grenoble.fr", "grenoble.fr", None),
            AccountRecord("COM:69123", Platform.BLUESKY, "bluesky:lyon.fr", "lyon.fr", None),
            AccountRecord(
                "COM:38185",
                Platform.MASTODON,
                "mastodon:grenoble@social.example",
                "grenoble@social.example",
                None,
            ),
            AccountRecord(
                "COM:75056", Platform.MASTODON, "mastodon:paris@social.example", "paris@social.example", None
            ),
        ],
        user_version(),
    )
    ch.close()
    env = dict(os.environ)
    env.update(
        BAROMETRE_CLICKHOUSE_URL=app_settings.clickhouse_url,
        BAROMETRE_CLICKHOUSE_DATABASE=app_settings.clickhouse_database,
        BAROMETRE_KAFKA_BOOTSTRAP=app_settings.kafka_bootstrap,
        BAROMETRE_KAFKA_TOPIC_PREFIX=app_settings.kafka_topic_prefix,
        BAROMETRE_BLUESKY_API_URL=platforms,
        BAROMETRE_MASTODON_URL_TEMPLATE=platforms,
    )
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "poll"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "bluesky: 2 snapshots, 0 failures" in out.stdout
    assert "mastodon: 1 snapshots, 1 failures" in out.stdout
    assert "mastodon:paris@social.example: not_found" in out.stdout
    values = {v["account_id"]: v for _, v in consume_all(app_settings, 3)}
    assert {k: v["followers"] for k, v in values.items()} == {
        "bluesky:grenoble.fr": 5400,
        "bluesky:lyon.fr": 12000,
        "mastodon:grenoble@social.example": 777,
    }
    assert values["bluesky:lyon.fr"]["entity_id"] == "COM:69123"
    assert {v["source"] for v in values.values()} == {"poller:bluesky", "poller:mastodon"}
