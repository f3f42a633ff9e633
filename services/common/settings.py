"""The one typed settings object of a process, read from ``BAROMETRE_*`` environment variables.

Build it once at start-up with :func:`get_settings` and pass it down; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.names import SCORING_CONSUMER_GROUP

REPO_ROOT = Path(__file__).resolve().parents[2]
# BAROMETRE_BOOTSTRAP_TOKEN is accepted with every scope: shorter than this, no process starts.
BOOTSTRAP_MIN_LENGTH = 32


class Settings(BaseSettings):
    """Everything a barometre process can be told from outside."""

    # hide_input_in_errors: a refused value may be a secret (a short bootstrap token); errors name the
    # setting and the rule, never the value.
    model_config = SettingsConfigDict(
        env_prefix="BAROMETRE_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    # State of `barometre run` (Kafka logs, the chDB data directory, process logs).
    data_dir: Path = Field(default=REPO_ROOT / "data")
    # Downloaded artefacts that are not committed (Kafka jars).
    cache_dir: Path = Field(default=REPO_ROOT / ".cache")

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_heap: str = "512m"
    # Partitions of the topics barometre creates: at most this many scoring workers share the work
    # (12: one to twelve workers, evenly for 1, 2, 3, 4, 6 and 12). Set when a topic is created: the
    # worker follows an existing snapshot topic's count.
    kafka_partitions: int = Field(default=12, ge=1, le=1000)
    # Prepended to every topic name (empty in production: the contract's names). Lets several
    # barometre instances, or test runs, share one Kafka cluster without seeing each other's events.
    kafka_topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,100}$")
    # Replication factor of the topics barometre creates: 0 (the default) means min(3, brokers in the
    # cluster), counted when the topic is created; any other value is used as given (and topic creation
    # fails if the cluster has fewer brokers). Topics with 3 replicas get min.insync.replicas=2.
    kafka_replication: int = Field(default=0, ge=0)
    # Client security: PLAINTEXT (no authentication), or SASL_PLAINTEXT / SASL_SSL (TLS, system CAs) with
    # a SASL mechanism and a user (SCRAM-SHA-512 in the production compose: one Kafka user per service,
    # ACLs on the brokers). services.common.kafka.client_security() turns these into client arguments.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")

    # Services only ever speak HTTP to ClickHouse, so a real server can replace the local endpoint.
    clickhouse_url: str = "http://127.0.0.1:8123"
    # An identifier (it is written into SQL as a table qualifier), never a value from a request.
    clickhouse_database: str = Field(default="barometre", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    # A cluster of the servers' <remote_servers> (empty: one server). Set, `barometre migrate` creates
    # every table ON CLUSTER: the large per-account ones as Replicated `<name>_local` tables sharded by
    # entity behind a Distributed table, the small ones replicated on every node (docs/OPERATIONS.md,
    # "A ClickHouse cluster"); clients then write to Distributed tables synchronously.
    clickhouse_cluster: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]{0,100}$")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # GET /v1/status says the figures are provisional while the scoring worker has more snapshots than
    # this left to score (docs/CONTRACT.md); the simulator's back-fill holds back past half of it.
    scoring_provisional_events: int = Field(default=20_000, ge=1)
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8001
    # The scoring worker serves /healthz, /readyz and /metrics here.
    scoring_host: str = "127.0.0.1"
    scoring_port: int = 8002
    # Where Faust keeps table state: "memory://" (rebuilt from the changelog topics at start) or
    # "rocksdb://" (on disk under data_dir/scoring; needs the rocksdict package).
    scoring_store: str = "memory://"
    # The worker starts only on the faust-streaming and mode-streaming releases its patches were tested
    # with (services/scoring/faust_patches.py); true lets it start on others, with a loud warning (for
    # whoever is trying a new release).
    scoring_allow_untested_faust: bool = False
    # A worker that stops heart-beating (killed, frozen) loses its partitions to the others after this
    # long (Kafka's session.timeout.ms; Faust's default is 60 s). Faust's consumer heart-beats from its
    # own thread, so a long batch does not expire it; the fault suite measures the failover.
    scoring_session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    # Several workers of one consumer group on one host (`barometre run --workers N`) each keep Faust's
    # files apart: worker "2" uses data_dir/scoring-2. Empty: data_dir/scoring.
    scoring_instance: str = Field(default="", pattern=r"^[a-z0-9-]{0,32}$")
    # A daily point tells an account's state for this long (docs/SCORING.md, "Staleness").
    staleness_days: int = Field(default=45, ge=1, le=3650)
    # The least base of relative rankings (docs/SCORING.md, "Minimum base"): growth_pct ranks only
    # entities (accounts) with this many followers at the window's start and, when known, this
    # population; per_1000_inhabitants only entities of this population. 0: no minimum.
    ranking_min_followers: int = Field(default=1000, ge=0)
    ranking_min_population: int = Field(default=2000, ge=0)
    # --- Alerts in the scoring worker (docs/ALERTS.md, "What the worker does").
    # Detections of the grouped types are held this long, so that many accounts of one platform
    # changing at once are seen whole and become one incident (NoiseParams.group_wait).
    alert_group_wait_s: float = Field(default=60.0, ge=0)
    # How often the worker looks for accounts silent past the staleness window (account_gone).
    alert_silence_check_s: float = Field(default=3600.0, gt=0)

    # A token every service accepts with every scope, admin included, for automation (see
    # docs/CONTRACT.md). No default; empty is unset; at least BOOTSTRAP_MIN_LENGTH characters.
    bootstrap_token: SecretStr | None = None

    @field_validator("bootstrap_token")
    @classmethod
    def _bootstrap_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < BOOTSTRAP_MIN_LENGTH:
            raise ValueError(
                f"BAROMETRE_BOOTSTRAP_TOKEN must be at least {BOOTSTRAP_MIN_LENGTH} characters (it has every "
                'scope); make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return value

    # --- Alert delivery in the api process (services/api/alert_hub.py, services/api/webhooks.py).
    # Live stream: events kept in memory for resuming (Last-Event-ID), and each client's queue; a client
    # whose queue is full is disconnected (it resumes from its last event id), never the hub held up.
    alert_stream_buffer: int = Field(default=10_000, ge=1)
    alert_stream_client_queue: int = Field(default=1_000, ge=1)
    alert_stream_heartbeat_s: float = Field(default=15.0, gt=0)
    # The webhook dispatcher (consumer group <prefix>barometre-webhooks); false turns it off in this
    # process (e.g. api replicas that should only serve HTTP).
    webhooks_enabled: bool = True
    webhook_reload_s: float = Field(default=5.0, gt=0)  # subscriptions are re-read this often
    webhook_timeout_s: float = Field(default=10.0, gt=0)  # per attempt
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_backoff_s: float = Field(default=1.0, ge=0)  # first retry delay; doubles, with jitter
    webhook_backoff_max_s: float = Field(default=300.0, ge=0)
    webhook_give_up_s: float = Field(default=3600.0, gt=0)  # no attempt starts later than this
    webhook_concurrency: int = Field(default=4, ge=1)  # deliveries in flight per subscription
    # --- Webhook egress (services/api/egress.py): networks webhooks may reach although they are loopback,
    # private, link-local… (comma-separated, e.g. "127.0.0.0/8" for tests); empty: public addresses only.
    webhook_allow_networks: str = ""
    webhook_max_response_bytes: int = Field(
        default=4096, ge=0
    )  # of a receiver's answer body, read then dropped

    # --- Limits of the HTTP services (services/common/limits.py; docs/CONTRACT.md, "Limits").
    # Requests a minute per client address and per bearer token (moving window, per process); 0: no limit.
    # 20/s per address: twice what the fault tests push from one address (10 requests/s).
    rate_limit_per_address: int = Field(default=1200, ge=0)
    rate_limit_per_token: int = Field(default=2400, ge=0)
    # Proxies whose X-Forwarded-For is believed (comma-separated networks); empty: the socket peer only.
    trusted_proxies: str = ""
    # Requests being served at once per process (beyond: 503 + Retry-After); 0: no limit. Alert streams
    # are not counted here but by api_max_sse_clients.
    max_concurrent_requests: int = Field(default=256, ge=0)
    api_max_sse_clients: int = Field(default=500, ge=0)  # open GET /v1/alerts/stream per api process
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1)  # request bodies of the api
    ingest_max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)  # POST /v1/snapshots bodies
    # Every api query runs with these ClickHouse limits (max_execution_time, max_memory_usage,
    # max_result_rows with result_overflow_mode='throw'); 0: the server's own.
    api_query_timeout_s: float = Field(default=10.0, ge=0)
    api_query_max_memory_bytes: int = Field(default=2 * 1024**3, ge=0)
    api_query_max_result_rows: int = Field(default=1_000_000, ge=0)
    # Decompressed bytes of one file given to `barometre import snapshots` (.gz); 0: no limit.
    import_max_decompressed_bytes: int = Field(default=64 * 1024**3, ge=0)

    @field_validator("trusted_proxies", "webhook_allow_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (i.strip() for i in value.split(","))):
            try:
                ipaddress.ip_network(item)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not a network ({exc})") from None
        return value

    log_level: str = "INFO"
    # json: one JSON object a line (ts, level, logger, message, service, request_id, event ids): the
    # container images' default; text: a human line, for `barometre run` and a terminal.
    log_format: Literal["json", "text"] = "text"

    # --- Platform pollers (services.ingest.sources.pollers). Base URLs are settings so that tests, proxies
    # and mirrors can stand in for the platforms.
    bluesky_api_url: str = "https://public.api.bsky.app"  # the public AppView: no authentication
    # Where a Mastodon account is looked up: "{instance}" becomes the account's own server (user@instance),
    # which knows its figures first-hand; a URL without "{instance}" sends every lookup to one server.
    mastodon_url_template: str = "https://{instance}"
    facebook_graph_url: str = "https://graph.facebook.com"
    # The last Graph API version that serves several pages per request (GET /?ids=...); see
    # facebook_batch_size for versions and apps without it.
    facebook_graph_version: str = "v25.0"
    facebook_token: SecretStr | None = None  # a page or system-user token; the Facebook poller needs one
    # Pages per Graph request (the API's maximum is 50). 1 asks for each page on its own (GET /{id}),
    # for apps or Graph versions without multi-id requests.
    facebook_batch_size: int = Field(default=50, ge=1, le=50)
    # Facebook's usage headers give the share of a rate limit used, in percent: above the first
    # threshold requests are spaced out, above the second they pause.
    facebook_usage_slowdown_percent: float = 75.0
    facebook_usage_pause_percent: float = 90.0
    facebook_slowdown_interval_seconds: float = 5.0
    # The pause when Facebook does not say when access returns (estimated_time_to_regain_access).
    facebook_usage_pause_seconds: float = 300.0
    youtube_api_url: str = "https://www.googleapis.com"
    youtube_api_key: SecretStr | None = None  # a YouTube Data API v3 key; the YouTube poller needs one
    # After "quotaExceeded", YouTube polling stops until the daily quota resets (midnight, Pacific time),
    # or for this many seconds when set (a project whose quota resets otherwise).
    youtube_quota_pause_seconds: float | None = None
    # --- X, Instagram and Threads pollers (pollers/x.py, instagram.py, threads.py; docs in the README).
    x_api_url: str = "https://api.x.com"
    x_bearer_token: SecretStr | None = None  # an X API v2 app-only Bearer token; the X poller needs one
    # Also read each account's last 30 days of posts (GET /2/users/:id/tweets): posts_30d,
    # interactions_30d, replies_30d. Off by default: it reads posts, which X bills per post read.
    x_read_posts: bool = False
    # After X's "usage cap" 429 or "credits depleted" 402, X polling pauses this long.
    x_usage_cap_pause_seconds: float = Field(default=86_400.0, ge=0)
    # Instagram business discovery goes through an Instagram professional account of the operator's
    # (its IG user id) on facebook_graph_url/facebook_graph_version; the token defaults to facebook_token.
    instagram_business_account_id: str | None = Field(default=None, pattern=r"^[0-9]{1,40}$")
    instagram_token: SecretStr | None = None
    threads_api_url: str = "https://graph.threads.net"
    threads_api_version: str = "v1.0"
    threads_token: SecretStr | None = None  # a Threads user token with threads_profile_discovery
    # Also read each account's posts of the last 30 days (GET /profile_posts): posts_30d. Off by
    # default: it doubles the requests, out of 1,000 per 24 hours.
    threads_read_posts: bool = False
    poller_timeout_seconds: float = Field(default=10.0, gt=0)
    poller_max_attempts: int = Field(default=4, ge=1)  # per request, the first included
    poller_backoff_seconds: float = Field(default=1.0, ge=0)  # first back-off; doubles at each retry
    poller_backoff_max_seconds: float = Field(default=60.0, ge=0)
    # The longest pause a poll waits through; a longer one (a spent daily quota, a long Retry-After)
    # ends the poll for the accounts it holds up, reported as failures, and the next poll resumes.
    poller_max_wait_seconds: float = Field(default=300.0, ge=0)
    poller_concurrency: int = Field(default=4, ge=1)  # Mastodon servers polled at the same time
    poller_user_agent: str = "barometre/0.1 (public audience figures of French local governments)"

    # --- The poller service (`barometre poller`, services.ingest.polling): when each account is read.
    poller_host: str = "127.0.0.1"
    poller_port: int = 8003
    # Cadences: large (>= poller_large_followers) or moving accounts (followers changing by
    # poller_moving_share_per_day or more a day) hourly; small (< poller_small_followers) quiet ones
    # daily; the rest, and new accounts until their first reading, every 6 hours.
    poller_cadence_fast_s: float = Field(default=3_600.0, gt=0)
    poller_cadence_normal_s: float = Field(default=21_600.0, gt=0)
    poller_cadence_slow_s: float = Field(default=86_400.0, gt=0)
    poller_large_followers: int = Field(default=10_000, ge=0)
    poller_small_followers: int = Field(default=1_000, ge=0)
    poller_moving_share_per_day: float = Field(default=0.01, gt=0)
    # A failed account is tried again after this, doubling with each failure in a row, at most the max.
    poller_failure_backoff_s: float = Field(default=900.0, gt=0)
    poller_failure_backoff_max_s: float = Field(default=86_400.0, gt=0)
    # Share of each platform's documented rate budget the poller uses (headroom for other clients).
    poller_budget_share: float = Field(default=0.9, gt=0, le=1)
    # Budgets replacing the documented ones, per platform: {"youtube": [1000000, 86400]} (JSON) for a
    # project with a larger quota; requests per window of seconds, per rate-limit key.
    poller_rate_budgets: dict[str, tuple[int, float]] = Field(default_factory=dict)
    poller_registry_refresh_s: float = Field(default=300.0, gt=0)  # newly registered accounts picked up
    poller_chunk_seconds: float = Field(default=60.0, gt=0)  # each poll takes about this much budget

    # --- Poller activity (services.ingest.sources.pollers.activity): the last 30 days of posts, their
    # interactions and the account's replies, which the good-practice score needs. Costs requests (at
    # least one more per account and poll; a YouTube quota unit each): off, polls read audience only.
    poll_activity: bool = True
    # Pages of posts read per account and poll at most (Bluesky 100 a page, Facebook 100, YouTube 50,
    # Mastodon 40): an account posting more in 30 days is counted on its newest posts, and logged.
    poll_activity_max_pages: int = Field(default=5, ge=1, le=100)

    # --- Account discovery (`barometre discover`, services.ingest.discovery): the public registries asked.
    wikidata_sparql_url: str = "https://query.wikidata.org/sparql"
    annuaire_url: str = (
        "https://api-lannuaire.service-public.fr/api/explore/v2.1/catalog/datasets/"
        "api-lannuaire-administration/records"
    )
    # Wikimedia's User-Agent policy asks for a way to reach the operator: an e-mail address or a URL,
    # appended to the discovery User-Agent. Set it when running discovery for real.
    discovery_contact: str = ""
    # Rows per Wikidata query page (LIMIT): small enough that each query ends well within the
    # endpoint's 60 s limit, large enough to keep the number of queries low.
    discovery_sparql_page_size: int = Field(default=5_000, ge=1, le=100_000)
    discovery_timeout_seconds: float = Field(default=90.0, gt=0)  # the SPARQL endpoint stops at 60 s
    discovery_max_attempts: int = Field(default=5, ge=1)
    discovery_backoff_seconds: float = Field(default=2.0, ge=0)
    discovery_backoff_max_seconds: float = Field(default=120.0, ge=0)
    discovery_max_wait_seconds: float = Field(default=900.0, ge=0)  # the longest Retry-After waited through

    def discovery_user_agent(self) -> str:
        """The User-Agent of discovery requests: tool, version, purpose and the operator's contact."""
        contact = f"; {self.discovery_contact}" if self.discovery_contact else ""
        return f"barometre-discover/0.1 (official accounts of French local governments{contact})"

    def scoring_group(self) -> str:
        """The scoring worker's Faust app id and Kafka consumer group, for this instance."""
        return self.kafka_topic_prefix + SCORING_CONSUMER_GROUP

    def topic(self, topic: StrEnum) -> str:
        """The Kafka name of ``topic`` (a services.common.names.Topic) for this instance."""
        return self.kafka_topic_prefix + topic.value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built on first use."""
    return Settings()
