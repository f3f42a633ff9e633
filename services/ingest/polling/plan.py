"""``barometre poll --plan``: for the registered accounts and the configured budgets, how often each
platform can be read. Reads the registry and ``poll_state`` (each account's current cadence; a new
account counts at the normal cadence), plans with :func:`~services.ingest.polling.schedule.plan_platform`.

Requests per account are estimated: one request per batch, plus one per account where the poller also
reads the account's posts (``poll_activity``, X's ``x_read_posts``, Threads' ``threads_read_posts``);
an account posting more than one page a month costs more, which the running service measures.
"""

from __future__ import annotations

from services.common import registry
from services.common.clickhouse import make_client
from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.polling import state
from services.ingest.polling.schedule import PlatformPlan, plan_platform
from services.ingest.polling.service import limits_for, requests_per_account
from services.ingest.sources.pollers.base import AccountRef
from services.ingest.sources.pollers.mastodon import split_acct
from services.ingest.sources.pollers.runner import configured_platforms


def rate_key(ref: AccountRef) -> str:
    """The rate-limit key an account's requests count against: its server on Mastodon, else the platform."""
    if ref.platform is Platform.MASTODON:
        parts = split_acct(ref)
        if parts is not None:
            return parts[1]
    return ref.platform.value


def build_plans(settings: Settings) -> list[PlatformPlan]:
    """One plan per configured platform, for the accounts registered now."""
    platforms = configured_platforms(settings)
    client = make_client(settings)
    try:
        rows = registry.account_rows(client, settings.clickhouse_database, [p.value for p in platforms])
        stored = state.load_states(client, settings.clickhouse_database, [p.value for p in platforms])
    finally:
        client.close()
    normal = settings.poller_cadence_normal_s
    accounts: dict[Platform, list[tuple[str, float]]] = {p: [] for p in platforms}
    for account_id, platform, entity_id, handle, _platform_id in rows:
        try:
            ref = AccountRef.create(platform, account_id=account_id, handle=handle, entity_id=entity_id)
        except ValueError:
            continue  # the service skips it too, and says so in its log
        saved = stored.get(account_id)
        cadence = float(saved.cadence_s) if saved is not None and saved.cadence_s > 0 else normal
        accounts[ref.platform].append((rate_key(ref), cadence))
    plans = []
    for platform in platforms:
        limits = limits_for(platform, settings)
        plans.append(
            plan_platform(
                platform.value,
                accounts[platform],
                batch_size=limits.batch_size,
                budget=limits.budget,
                requests_per_account=requests_per_account(platform, limits.batch_size, settings),
            )
        )
    return plans
