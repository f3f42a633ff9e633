"""`barometre import accounts` with links pasted where handles go: the account a poller can read is
registered, not the link."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.clickhouse import make_client
from services.common.settings import Settings
from tests.integration.ingest.test_import import barometre

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_import_accounts_with_pasted_links(app_settings: Settings, tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(
        "entity_id,platform,handle,url\n"
        "COM:38185,facebook,https://www.facebook.com/VilledeGrenoble,\n"
        "COM:38185,twitter,,https://mobile.twitter.com/VilleGrenoble/status/1?lang=fr\n"
        "COM:38185,facebook,https://www.facebook.com/groups/grenoble,\n"  # line 4: a group
    )
    out = barometre(app_settings, "import", "accounts", str(accounts))
    assert out.returncode == 1 and f"{accounts}:4:" in out.stderr and "is a group" in out.stderr, out.stderr

    ch = make_client(app_settings)
    rows = ch.query(
        f"SELECT account_id, platform, entity_id, handle, url FROM {app_settings.clickhouse_database}.accounts "
        "FINAL ORDER BY account_id"
    ).result_rows
    ch.close()
    assert rows == [
        (
            "facebook:villedegrenoble",
            "facebook",
            "COM:38185",
            "VilledeGrenoble",
            "https://www.facebook.com/VilledeGrenoble",
        ),
        ("x:villegrenoble", "x", "COM:38185", "VilleGrenoble", "https://x.com/VilleGrenoble"),
    ]
