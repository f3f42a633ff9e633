"""The one place that names things: platforms, entity categories, statuses, alert types, windows, topics,
tables.

Every other module (and the JSON Schemas under ``schemas/events/``, checked by a unit test) takes these
values from here, so a platform or a topic is spelled exactly once (DESIGN.md, principle 6).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import StrEnum
from typing import Final


class Platform(StrEnum):
    """A social network, as stored and served. Input aliases are in :data:`PLATFORM_ALIASES`."""

    FACEBOOK = "facebook"
    X = "x"
    INSTAGRAM = "instagram"
    YOUTUBE = "youtube"
    LINKEDIN = "linkedin"
    TIKTOK = "tiktok"
    MASTODON = "mastodon"
    BLUESKY = "bluesky"
    THREADS = "threads"


# Accepted on input, never stored: the contract keeps the old name of X working for old exports.
PLATFORM_ALIASES: dict[str, Platform] = {"twitter": Platform.X}

# Platforms whose stable account ids are case-sensitive (YouTube channel ids "UC…", TikTok secUid):
# there the id part of an account_id is kept as sent. Elsewhere ids are numeric or case-insensitive
# handles, so the id part is lower-cased and "x:Grenoble" and "x:grenoble" are one account.
CASE_SENSITIVE_ID_PLATFORMS: frozenset[Platform] = frozenset({Platform.YOUTUBE, Platform.TIKTOK})


def allowed_platforms_text() -> str:
    """The allowed platform names, for error messages."""
    aliases = ", ".join(f"{alias} is accepted as {to.value}" for alias, to in PLATFORM_ALIASES.items())
    return f"{', '.join(p.value for p in Platform)} ({aliases})"


def normalise_platform(value: str) -> Platform:
    """The platform named by ``value`` (exact, lower-case), aliases resolved; ValueError otherwise."""
    if value in PLATFORM_ALIASES:
        return PLATFORM_ALIASES[value]
    try:
        return Platform(value)
    except ValueError:
        raise ValueError(f"unknown platform {value!r}; allowed: {allowed_platforms_text()}") from None


class Category(StrEnum):
    """A kind of entity (collectivité), as named in the API; :attr:`kind` is its entity_id prefix."""

    COMMUNE = "commune"
    DEPARTEMENT = "departement"
    REGION = "region"
    EPCI = "epci"

    @property
    def kind(self) -> str:
        """The ``KIND`` of ``KIND:code`` entity ids of this category."""
        return _CATEGORY_KIND[self]

    @classmethod
    def from_kind(cls, kind: str) -> Category:
        """The category whose entity ids start with ``kind:``; ValueError for an unknown kind."""
        for category, category_kind in _CATEGORY_KIND.items():
            if category_kind == kind:
                return category
        raise ValueError(f"unknown entity kind {kind!r}; allowed: {', '.join(_CATEGORY_KIND.values())}")

    @classmethod
    def of_entity_id(cls, entity_id: str) -> Category:
        """The category of ``KIND:code``, read from its prefix."""
        kind, _, _ = entity_id.partition(":")
        return cls.from_kind(kind)


_CATEGORY_KIND: dict[Category, str] = {
    Category.COMMUNE: "COM",
    Category.DEPARTEMENT: "DEP",
    Category.REGION: "REG",
    Category.EPCI: "EPCI",
}


# The panel of a membership row that names none (CONTRACT.md, "Files").
DEFAULT_PANEL = "default"


class AccountStatus(StrEnum):
    """What a snapshot says about the account itself."""

    ACTIVE = "active"
    DELETED = "deleted"
    SUSPENDED = "suspended"


class SourceKind(StrEnum):
    """Where a snapshot came from; ``poller`` is always written ``poller:<name>``."""

    IMPORT = "import"
    PUSH = "push"
    POLLER = "poller"
    SIMULATOR = "simulator"


class AccountOrigin(StrEnum):
    """How an account came into the registry (``accounts.origin``).

    Simulated and real data never mix: the pollers never read a ``simulator`` account, and every
    figure computed over simulated accounts says so (``/v1/coverage``, the dashboard).
    """

    SIMULATOR = "simulator"  # invented by `barometre simulate`
    IMPORT = "import"  # `barometre import accounts`: a user's word, which wins over discovery
    # Registered by a door that names accounts as it goes; none writes these yet: an account only
    # ever pushed with an entity_id is not registered, and coverage counts it as "unregistered".
    PUSH = "push"
    POLL = "poll"
    DISCOVER = "discover"  # found in a public registry by `barometre discover`


class AccountState(StrEnum):
    """Where an account stands in review (``accounts.state``)."""

    CANDIDATE = "candidate"  # named by a source, not (yet) confirmed on the platform
    VERIFIED = "verified"  # confirmed: a user imported it, or the platform resolved it to a stable id
    REJECTED = "rejected"  # a person said it is not the entity's official account; never polled
    GONE = "gone"  # the platform says it no longer exists (confirmed by its stable id)


# States whose accounts the pollers read: a rejected account is not the entity's, a gone one is gone.
POLLED_STATES: frozenset[AccountState] = frozenset({AccountState.CANDIDATE, AccountState.VERIFIED})


class AlertType(StrEnum):
    """What an alert is about."""

    AUDIENCE_SPIKE = "audience_spike"
    AUDIENCE_DROP = "audience_drop"
    ACCOUNT_GONE = "account_gone"
    ACCOUNT_NEW = "account_new"
    DORMANT = "dormant"


class AlertSeverity(StrEnum):
    """How loudly an alert should be shown; the usual three levels of monitoring tools."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    """An alert is open until someone acknowledges it (``POST /v1/alerts/{alert_id}/ack``)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class DeadLetterCode(StrEnum):
    """Why a record was moved to a dead-letter topic."""

    INVALID_ENCODING = "invalid_encoding"  # the value is not UTF-8
    INVALID_JSON = "invalid_json"  # UTF-8, but not a JSON document
    INVALID_EVENT = "invalid_event"  # JSON, but it breaks the event contract
    PROCESSING_ERROR = "processing_error"  # a valid event that the consumer could not process
    WRITE_REJECTED = "write_rejected"  # a valid event whose rows ClickHouse refuses (a value, a constraint)


class PayloadEncoding(StrEnum):
    """How the bytes of a dead-lettered key or value are written as JSON text."""

    UTF8 = "utf-8"
    BASE64 = "base64"


class Window(StrEnum):
    """The windows of growth rankings and of the API; :attr:`delta` is the duration."""

    D1 = "1d"
    D7 = "7d"
    D30 = "30d"
    D90 = "90d"
    D365 = "365d"

    @property
    def delta(self) -> timedelta:
        """The window's length."""
        return timedelta(days=int(self.value.removesuffix("d")))


WINDOWS: dict[Window, timedelta] = {window: window.delta for window in Window}


class Topic(StrEnum):
    """Kafka topics. Snapshots and their dead letters are keyed by account_id (UTF-8)."""

    ACCOUNT_SNAPSHOTS = "account-snapshots.v1"
    ACCOUNT_SNAPSHOTS_DLQ = "account-snapshots.dlq"
    ALERTS = "alerts.v1"
    # Internal, keyed by platform: the scoring worker's per-account detections on their way to the one
    # noise-control stage that sees a whole platform (docs/ALERTS.md, "What the worker does").
    ALERT_CANDIDATES = "alert-candidates.v1"
    # Platform-wide incidents (Incident.to_dict() as JSON), keyed by platform; beside alerts.v1.
    INCIDENTS = "incidents.v1"


class Table(StrEnum):
    """ClickHouse tables, without their database: SQL writes ``f"{db}.{Table.SNAPSHOTS}"``.

    Created by ``services/common/migrations/*.sql`` (a unit test checks both lists agree), except
    :attr:`SCHEMA_MIGRATIONS`, the migration runner's own log.
    """

    # 0001: the collectivités
    ENTITIES = "entities"
    # 0002: the registry, panels and API tokens
    ACCOUNTS = "accounts"
    PANELS = "panels"
    API_TOKENS = "api_tokens"
    # 0003: what the scoring worker writes
    SNAPSHOTS = "snapshots"
    ACCOUNT_DAILY = "account_daily"
    ACCOUNT_LATEST = "account_latest"
    PRESENCE = "presence"
    ENTITY_LATEST = "entity_latest"
    # 0004: alerts and what surrounds them
    ALERTS = "alerts"
    ALERT_ACKS = "alert_acks"
    INCIDENTS = "incidents"
    SILENCES = "silences"
    WEBHOOK_SUBSCRIPTIONS = "webhook_subscriptions"
    WEBHOOK_DELIVERIES = "webhook_deliveries"
    # 0005: who named each account
    ACCOUNT_SOURCES = "account_sources"
    # 0006: the pollers' progress
    POLL_STATE = "poll_state"
    POLL_FAILURES = "poll_failures"
    # The migration runner's log (services/common/migrations/__init__.py), not created by a .sql file.
    SCHEMA_MIGRATIONS = "schema_migrations"


# The scoring worker's Faust app id, which is also its Kafka consumer group: `import --wait` reads the
# group's committed offsets, which the worker commits only after its ClickHouse writes succeeded.
SCORING_CONSUMER_GROUP: Final = "barometre-scoring"

# The ``schema`` field of each event type: name and major version.
ACCOUNT_SNAPSHOT_SCHEMA: Final = "account_snapshot/1"
DEAD_LETTER_SCHEMA: Final = "dead_letter/1"

# The version of the good-practice score's formula (docs/SCORING.md), stored with every score
# (``account_latest.score_formula``) and served with every figure made of scores. A new formula is a new
# version, computed by a new function beside the old one (services/scoring/maths/score.py).
SCORE_FORMULA: Final = "score/1"

# Namespaces of the deterministic (UUIDv5) ids; changing one changes every derived id, so never do.
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:barometre:event:account_snapshot")
ALERT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:barometre:event:alert")
