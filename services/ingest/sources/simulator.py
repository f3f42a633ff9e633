"""A seeded, time-accelerated simulation of the official accounts of French collectivités.

What ``barometre run`` feeds the stack with so the dashboard is alive, and what the benchmarks and the
alert-evaluation harness use: every commune, département, région and EPCI gets accounts on the platforms
with a realistic probability, audiences and posting habits, and occasional true events (contest spikes,
platform purges, deleted and suspended accounts, new accounts, accounts going silent) whose ground truth
is kept. The model, each parameter and its calibration are in ``docs/simulator.md``.

API::

    sim = Simulator(entities, params=SimulatorParams(), seed=0, origin=datetime(2025, 1, 1, tzinfo=UTC))
    sim.accounts(at=None) -> list[SimAccount]       # the registry (accounts created by ``at``)
    sim.accounts_csv(at=None) -> str                # the same as an accounts file (CONTRACT.md, "Files")
    sim.observe(t) -> Batch                         # one snapshot of every account visible at t
    sim.snapshots_at(t) -> list[AccountSnapshot]    # the same as pydantic models (the slow path)
    sim.run(start, end, step) -> Iterator[Batch]    # observe(start), observe(start + step)… while < end
    sim.live(speed, step, start, end, clock=, sleep=, not_after=) -> Iterator[Batch]
                                                    # run() paced so simulated time goes ``speed`` times
                                                    # faster than the wall clock (injectable for tests)
    sim.events(start, end) -> list[InjectedEvent]   # the injected ground truth in [start, end)

    batch.t, len(batch), batch.index, batch.followers, batch.status…  # numpy columns
    batch.records() -> list[tuple[bytes, bytes]]    # (key, value) for Kafka: value is byte-identical to
                                                    # AccountSnapshot(...).to_event_bytes()
    batch.iter_records(chunk_size) -> Iterator[list[tuple[bytes, bytes]]]  # the same, chunk by chunk
    batch.event_bytes() -> list[bytes]; batch.dicts() -> list[dict]; batch.models() -> list[AccountSnapshot]

Determinism: every random draw comes from a generator keyed by ``(seed, stream, day)``, so the state on
simulated day ``d`` depends on the seed and ``d`` only — never on the wall clock, on the steps the caller
chose, or on what was asked before. The same seed gives byte-identical events; asking for an earlier
time than the current state replays the days from ``origin``.

Time: days are 24-hour periods starting at midnight UTC of ``origin``. The state is advanced one day at a
time (vectorised over all accounts with numpy); a snapshot at an instant inside a day reports the
followers interpolated between the two midnights and the 30-day counts as of the previous midnight.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import operator
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from services.common.events import SNAPSHOT_FIELDS, AccountSnapshot, format_timestamp
from services.common.names import (
    ACCOUNT_SNAPSHOT_SCHEMA,
    EVENT_ID_NAMESPACE,
    AccountStatus,
    AlertType,
    Category,
    Platform,
    SourceKind,
)

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.integer[Any]]

DAY_SECONDS = 86_400
DAYS_PER_MONTH = 365.25 / 12
DAYS_PER_YEAR = 365.25
ROLLING_DAYS = 30  # the window of posts_30d, interactions_30d, replies_30d, automated_posts_30d
DEFAULT_ORIGIN = datetime(2025, 1, 1, tzinfo=UTC)
PLATFORMS: tuple[Platform, ...] = tuple(Platform)
CATEGORIES: tuple[Category, ...] = tuple(Category)

_NEVER = np.int64(2**62)  # "no such instant" in the int64 second arrays
_NEVER_DAY = np.int32(2**31 - 1)  # "no such day" in the int32 day arrays
_MAX_DAILY_POSTS = 255  # the per-day ring buffers are uint8; no official account posts more
_STATUS_ACTIVE, _STATUS_DELETED, _STATUS_SUSPENDED = 0, 1, 2
_STATUS_TEXT = (AccountStatus.ACTIVE.value, AccountStatus.DELETED.value, AccountStatus.SUSPENDED.value)
_SOURCE = SourceKind.SIMULATOR.value
_SAFE_JSON_TEXT = re.compile(r"[A-Za-z0-9._:@-]+")  # written into JSON without escaping
_ROLE_MAIN, _ROLE_TOURISM, _ROLE_SYNTHETIC = 0, 1, 2
_ROLE_NAMES = ("main", "tourism", "synthetic")
_PART_KEYS = ("ent", "plat", "replica", "role", "tourism", "created", "potential", "posts_base", "z", "u")


class _Stream:
    """Separate random streams: changing the rate of one kind of event does not reshuffle the draws
    of the others (which accounts they pick on a day, and how much)."""

    REGISTRY = 1
    INIT = 2
    FOLLOWERS = 3
    POSTING = 4
    SPIKE = 5
    PURGE = 6
    DELETED = 7
    SUSPENDED = 8
    DORMANT = 9


# --- Parameters. Every default is explained in docs/simulator.md.


@dataclass(frozen=True)
class PlatformModel:
    """How entities use one platform: adoption, audience, growth, posting and platform-wide purges."""

    opens: date  # first official accounts of collectivités on the platform
    adoption_lag_years: float  # median delay after ``opens`` for an entity of presence log-odds 0
    presence_logit: Mapping[Category, float]  # eventual presence, log-odds, at the category's ref. pop.
    presence_slope: float  # log-odds per tenfold population (communes; other categories scaled down)
    followers_k: float  # mature audience = k * category factor * population ** beta (median)
    followers_beta: float
    growth_monthly: float  # net organic growth of a mature account, fraction per month
    churn_monthly: float  # unfollows, fraction per month (gross gain = growth + churn)
    posts_factor: float  # posting rate relative to the category's Facebook rate
    engagement: float  # interactions per follower per post at 1,000 followers (median)
    reply_ratio: float  # replies per hand-written post, for accounts that reply (median)
    automated_share: float  # share of accounts that are RSS-like feeds
    following_median: float | None  # None: the platform shows no "following" for official pages
    purge_rate_per_year: float  # platform-wide fake-account cleanings


def _logits(commune: float, departement: float, region: float, epci: float) -> dict[Category, float]:
    return {
        Category.COMMUNE: commune,
        Category.DEPARTEMENT: departement,
        Category.REGION: region,
        Category.EPCI: epci,
    }


def _default_platforms() -> dict[Platform, PlatformModel]:
    return {
        Platform.FACEBOOK: PlatformModel(
            opens=date(2008, 1, 1),
            adoption_lag_years=6.0,
            presence_logit=_logits(commune=0.5, departement=5.0, region=6.0, epci=1.2),
            presence_slope=2.4,
            followers_k=1.2,
            followers_beta=0.9,
            growth_monthly=0.008,
            churn_monthly=0.006,
            posts_factor=1.0,
            engagement=0.01,
            reply_ratio=0.3,
            automated_share=0.02,
            following_median=None,
            purge_rate_per_year=0.3,
        ),
        Platform.X: PlatformModel(
            opens=date(2009, 1, 1),
            adoption_lag_years=4.0,
            presence_logit=_logits(commune=-3.0, departement=3.5, region=4.0, epci=-0.4),
            presence_slope=3.0,
            followers_k=0.25,
            followers_beta=0.95,
            growth_monthly=0.003,
            churn_monthly=0.01,
            posts_factor=1.6,
            engagement=0.003,
            reply_ratio=0.5,
            automated_share=0.08,
            following_median=250.0,
            purge_rate_per_year=0.5,
        ),
        Platform.INSTAGRAM: PlatformModel(
            opens=date(2012, 6, 1),
            adoption_lag_years=5.0,
            presence_logit=_logits(commune=-1.5, departement=2.5, region=3.5, epci=-0.2),
            presence_slope=2.3,
            followers_k=0.45,
            followers_beta=0.9,
            growth_monthly=0.02,
            churn_monthly=0.008,
            posts_factor=0.5,
            engagement=0.03,
            reply_ratio=0.2,
            automated_share=0.0,
            following_median=150.0,
            purge_rate_per_year=0.5,
        ),
        Platform.YOUTUBE: PlatformModel(
            opens=date(2007, 1, 1),
            adoption_lag_years=7.0,
            presence_logit=_logits(commune=-3.5, departement=1.8, region=3.0, epci=-1.0),
            presence_slope=2.2,
            followers_k=0.02,
            followers_beta=0.9,
            growth_monthly=0.015,
            churn_monthly=0.005,
            posts_factor=0.05,
            engagement=0.01,
            reply_ratio=0.1,
            automated_share=0.0,
            following_median=None,
            purge_rate_per_year=0.2,
        ),
        Platform.LINKEDIN: PlatformModel(
            opens=date(2010, 1, 1),
            adoption_lag_years=7.0,
            presence_logit=_logits(commune=-3.2, departement=2.2, region=3.0, epci=0.2),
            presence_slope=2.3,
            followers_k=0.25,
            followers_beta=0.9,
            growth_monthly=0.02,
            churn_monthly=0.004,
            posts_factor=0.35,
            engagement=0.01,
            reply_ratio=0.1,
            automated_share=0.02,
            following_median=None,
            purge_rate_per_year=0.2,
        ),
        Platform.TIKTOK: PlatformModel(
            opens=date(2019, 6, 1),
            adoption_lag_years=3.0,
            presence_logit=_logits(commune=-5.5, departement=-1.4, region=-0.6, epci=-3.5),
            presence_slope=2.0,
            followers_k=0.15,
            followers_beta=0.9,
            growth_monthly=0.04,
            churn_monthly=0.01,
            posts_factor=0.25,
            engagement=0.05,
            reply_ratio=0.2,
            automated_share=0.0,
            following_median=30.0,
            purge_rate_per_year=0.3,
        ),
        Platform.MASTODON: PlatformModel(
            opens=date(2022, 11, 1),
            adoption_lag_years=1.0,
            presence_logit=_logits(commune=-5.8, departement=-2.3, region=-1.7, epci=-4.5),
            presence_slope=1.7,
            followers_k=0.01,
            followers_beta=0.9,
            growth_monthly=0.01,
            churn_monthly=0.012,
            posts_factor=0.8,
            engagement=0.01,
            reply_ratio=0.4,
            automated_share=0.1,
            following_median=80.0,
            purge_rate_per_year=0.0,
        ),
        Platform.BLUESKY: PlatformModel(
            opens=date(2024, 2, 1),
            adoption_lag_years=0.8,
            presence_logit=_logits(commune=-4.6, departement=-0.8, region=0.0, epci=-3.0),
            presence_slope=2.0,
            followers_k=0.04,
            followers_beta=0.9,
            growth_monthly=0.03,
            churn_monthly=0.01,
            posts_factor=0.8,
            engagement=0.015,
            reply_ratio=0.4,
            automated_share=0.08,
            following_median=120.0,
            purge_rate_per_year=0.3,
        ),
        Platform.THREADS: PlatformModel(
            opens=date(2023, 12, 14),
            adoption_lag_years=1.0,
            presence_logit=_logits(commune=-5.2, departement=-2.0, region=-1.4, epci=-4.0),
            presence_slope=1.8,
            followers_k=0.04,
            followers_beta=0.9,
            growth_monthly=0.02,
            churn_monthly=0.01,
            posts_factor=0.5,
            engagement=0.01,
            reply_ratio=0.3,
            automated_share=0.02,
            following_median=60.0,
            purge_rate_per_year=0.2,
        ),
    }


@dataclass(frozen=True)
class CategoryModel:
    """What the category of an entity changes: reference population, audience and posting levels."""

    reference_population: float  # where PlatformModel.presence_logit applies
    default_population: float  # used when the registry has no population for an entity
    presence_slope_factor: float  # multiplies PlatformModel.presence_slope
    followers_factor: float  # multiplies the audience of a commune of the same population
    posts_per_day: float  # median Facebook posts a day at the reference population


def _default_categories() -> dict[Category, CategoryModel]:
    return {
        Category.COMMUNE: CategoryModel(1_000, 500, 1.0, 1.0, 0.25),
        Category.DEPARTEMENT: CategoryModel(600_000, 600_000, 0.4, 0.10, 1.2),
        Category.REGION: CategoryModel(3_000_000, 3_000_000, 0.3, 0.06, 1.5),
        Category.EPCI: CategoryModel(30_000, 30_000, 0.6, 0.15, 0.35),
    }


@dataclass(frozen=True)
class SimulatorParams:
    """Every knob of the model, with the defaults of docs/simulator.md. Mappings are read-only by use."""

    platforms: Mapping[Platform, PlatformModel] = field(default_factory=_default_platforms)
    categories: Mapping[Category, CategoryModel] = field(default_factory=_default_categories)
    # Size: ``scale`` draws of each entity's account set (replicas after the first are synthetic
    # accounts, handles ending in _s2, _s3…); a fraction adds a replica to that share of entities.
    scale: float = 1.0
    # Accounts created more than this after origin are left out: a run rarely lasts that long, and
    # the long tail of late adopters (decades ahead) would only cost memory.
    horizon_years: float = 5.0
    # Presence and adoption.
    propensity_sd: float = 0.8  # entity "digital propensity", log-odds, shared by its platforms
    second_account_logit: float = -0.6  # tourism-office account, log-odds at 100,000 inhabitants
    second_account_slope: float = 1.3  # … per tenfold population
    second_account_followers: float = 0.4  # its audience relative to the main account's potential
    adoption_earliness: float = 0.3  # lag is multiplied by exp(-earliness * log-odds)
    adoption_lag_sigma: float = 0.6  # log-normal spread of the lag
    # Audience.
    followers_sigma: float = 0.8  # log-normal spread of the mature audience between accounts
    followers_propensity: float = 0.3  # how much the entity propensity also raises its audiences
    followers_floor: float = 20.0  # staff, elected officials, neighbours: median audience of any account
    maturation_years: float = 3.0  # an account approaches its potential audience like 1 - exp(-age/τ)
    new_account_followers: float = 10.0  # median audience on the day an account is created
    growth_sigma: float = 0.5  # log-normal spread of the organic growth rate between accounts
    daily_shock_sigma: float = 0.3  # log-normal day-to-day variation of new follows
    # Mon…Sun multipliers (mean 1): people follow pages on weekdays, post less on weekends.
    weekday_growth: tuple[float, ...] = (1.08, 1.10, 1.10, 1.08, 1.04, 0.82, 0.78)
    weekday_posting: tuple[float, ...] = (1.15, 1.20, 1.20, 1.20, 1.15, 0.55, 0.55)
    # Posting behaviour.
    posting_population_elasticity: float = 0.3
    posting_sigma: float = 0.8
    automated_posting_factor: float = 5.0  # RSS-like feeds post this many times more
    automated_engagement_factor: float = 0.2
    automated_share_range: tuple[float, float] = (0.9, 1.0)  # automated share of an RSS-like feed
    crossposting_share: float = 0.2  # hand-run accounts that also cross-post some automatic content
    crossposting_range: tuple[float, float] = (0.05, 0.3)
    engagement_size_elasticity: float = -0.25  # bigger audiences interact less per follower
    engagement_sigma: float = 0.7  # between accounts
    engagement_daily_sigma: float = 0.9  # between days: the odd post goes viral
    reply_sigma: float = 0.6
    silent_share: float = 0.35  # hand-run accounts that never answer their public
    following_sigma: float = 1.0
    dormant_growth_factor: float = 0.3  # a silent account still gains followers, slower
    # True events (rates per account and year unless said otherwise).
    spike_rate_per_year: float = 0.3
    spike_multiple_median: float = 25.0  # followers added, in typical daily changes
    spike_multiple_sigma: float = 0.6
    spike_multiple_range: tuple[float, float] = (8.0, 500.0)
    spike_min_typical: float = 4.0  # floor of the typical daily change of a tiny account
    spike_decay_share: tuple[float, float] = (0.2, 0.6)  # share of the gain lost afterwards
    spike_decay_days: float = 7.0  # time constant of that loss
    purge_account_share: float = 0.6  # accounts of the platform hit by a purge
    purge_fraction_median: float = 0.04  # followers removed from a hit account
    purge_fraction_sigma: float = 0.5
    purge_fraction_range: tuple[float, float] = (0.005, 0.3)
    purge_min_followers: float = 50.0
    deleted_rate_per_year: float = 0.01
    suspended_rate_per_year: float = 0.004
    suspension_days_median: float = 7.0
    suspension_days_sigma: float = 0.7
    gone_report_days: float = 7.0  # a deleted account is still reported (as deleted) this long
    dormant_rate_per_year: float = 0.04
    dormant_min_posts_30d: int = 3  # only an account that posted can fall silent visibly
    dormant_days_median: float = 90.0
    dormant_days_sigma: float = 0.8

    def without_events(self) -> SimulatorParams:
        """The same world with no injected event (new accounts from adoption still appear)."""
        return dataclasses.replace(
            self,
            spike_rate_per_year=0.0,
            deleted_rate_per_year=0.0,
            suspended_rate_per_year=0.0,
            dormant_rate_per_year=0.0,
            platforms={p: dataclasses.replace(m, purge_rate_per_year=0.0) for p, m in self.platforms.items()},
        )


# --- Ground truth, registry and input types.


class EventKind(StrEnum):
    """A kind of injected event; :attr:`alert_type` is the alert a detector should raise for it."""

    SPIKE = "spike"
    PURGE = "purge"
    DELETED = "deleted"
    SUSPENDED = "suspended"
    NEW = "new"
    DORMANT = "dormant"

    @property
    def alert_type(self) -> AlertType:
        """The alert type (CONTRACT.md, "Alert v1") that this event should trigger."""
        return _ALERT_OF_KIND[self]


_ALERT_OF_KIND = {
    EventKind.SPIKE: AlertType.AUDIENCE_SPIKE,
    EventKind.PURGE: AlertType.AUDIENCE_DROP,
    EventKind.DELETED: AlertType.ACCOUNT_GONE,
    EventKind.SUSPENDED: AlertType.ACCOUNT_GONE,
    EventKind.NEW: AlertType.ACCOUNT_NEW,
    EventKind.DORMANT: AlertType.DORMANT,
}
_KIND_ORDER = {kind: i for i, kind in enumerate(EventKind)}


@dataclass(frozen=True, slots=True)
class InjectedEvent:
    """One true event, for scoring alert detection. ``magnitude`` and ``relative`` depend on ``kind``:

    - spike: followers added during [start, end) (one day); ``relative``: that many typical daily changes.
      Afterwards a share of them unfollow again (``spike_decay_share`` over ``spike_decay_days``);
    - purge: minus the followers removed during [start, end) (one day); ``relative``: minus the share;
    - deleted / suspended: minus the followers that vanished at ``start`` (the account is then reported
      with 0 followers and its status; a deleted one for ``gone_report_days``, then not at all);
      ``end``: reinstatement (suspended) or None; ``relative``: -1;
    - new: followers at creation (``start``, the account's first possible snapshot); ``relative``: 0;
    - dormant: minus the posts of the 30 days before ``start``, when posting stops; it resumes at ``end``;
      ``relative``: -1.
    """

    kind: EventKind
    account_id: str
    start: datetime
    end: datetime | None
    magnitude: float
    relative: float
    platform: Platform
    entity_id: str


@dataclass(frozen=True, slots=True)
class SimAccount:
    """One simulated account, as an accounts file registers it, with when it was created."""

    account_id: str
    platform: Platform
    handle: str
    entity_id: str
    created_at: datetime
    role: str  # "main", "tourism" (a second account: the tourism office) or "synthetic" (from scale)
    automated: bool  # an RSS-like feed


class EntityLike(Protocol):
    """What the simulator reads from an entity record (the reference registry's, or a test's)."""

    @property
    def entity_id(self) -> str: ...

    @property
    def population(self) -> int | None: ...


EntityInput = EntityLike | Mapping[str, Any]


def _entity_fields(entity: EntityInput) -> tuple[str, str, float | None]:
    if isinstance(entity, Mapping):
        entity_id, name, population = entity["entity_id"], entity.get("name"), entity.get("population")
    else:
        entity_id, name, population = entity.entity_id, getattr(entity, "name", None), entity.population
    pop = None if population is None or population == "" else float(population)
    return str(entity_id), str(name or ""), pop


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:60]


_HANDLE_PREFIX = {
    Category.COMMUNE: "ville_",
    Category.DEPARTEMENT: "departement_",
    Category.REGION: "region_",
    Category.EPCI: "",  # EPCI names already say what they are ("CA du Grand Annecy")
}


def _entity_stems(entity_ids: list[str], names: list[str], categories: list[Category]) -> list[str]:
    """One readable, unique handle stem per entity; namesakes (the many Saint-Martin) get their code."""
    stems = []
    for entity_id, name, category in zip(entity_ids, names, categories, strict=True):
        stems.append(_HANDLE_PREFIX[category] + (_slug(name) or _slug(entity_id.partition(":")[2])))
    count: dict[str, int] = {}
    for stem in stems:
        count[stem] = count.get(stem, 0) + 1
    return [
        f"{stem}_{_slug(eid.partition(':')[2])}" if count[stem] > 1 else stem
        for stem, eid in zip(stems, entity_ids, strict=True)
    ]


def _sigmoid(x: F64) -> F64:
    return 1.0 / (1.0 + np.exp(-x))


def _mean_one_noise(gen: np.random.Generator, sigma: float, n: int, clip: float = math.inf) -> F64:
    """Log-normal noise of mean 1 (not median 1), so that noisy rates keep their calibrated mean;
    ``clip`` bounds the underlying normal, in standard deviations."""
    return np.exp(sigma * np.clip(gen.standard_normal(n), -clip, clip) - sigma * sigma / 2)


_LOG_CODE_SCALE = 2000.0  # uint16 code = round(log2(1 + x) * scale); 65,535 codes reach 7.3e9
_MAX_DAILY_INTERACTIONS = 2**32


def _decode_interactions(code: npt.NDArray[np.uint16]) -> I64:
    return np.rint(np.exp2(code / _LOG_CODE_SCALE) - 1.0).astype(np.int64)


def _f32(values: npt.ArrayLike) -> F32:
    return np.asarray(values, dtype=np.float32)


def _per_platform(models: list[PlatformModel], attribute: str) -> F64:
    return np.array([float(getattr(m, attribute) or 0.0) for m in models])


# --- Output: one tick of snapshots in the formats the consumers want.

# The JSON text of an AccountSnapshot exactly as pydantic writes it (field order, no spaces, optional
# fields left out), so the producer can skip building 300,000 models a tick. It is generated from the
# model's fields (SNAPSHOT_FIELDS, in their order) and, for each, what the simulator writes (_WRITES):
# a field of the model missing from _WRITES stops this module from loading. A unit test holds the text
# and the model byte for byte; ids, handles and entity ids are plain ASCII (checked at construction), so
# nothing needs escaping.


@dataclass(frozen=True)
class _Write:
    """How the simulator writes one field: ``how`` is ``text`` (a JSON string), ``number`` (a JSON
    integer) or ``member`` (``what`` holds the whole ``,"name":value``, or nothing when the account
    has no such figure), each from ``what``, a Python expression over a row's variables (_ROW); or
    ``constant``, the JSON of the value ``what``. ``when_gone``: whether a deleted or suspended account
    reports it (the figures are meaningless then: a poller that finds an account gone can read none)."""

    how: Literal["text", "number", "member", "constant"]
    what: str
    when_gone: bool = True


_WRITES = {
    "schema": _Write("constant", ACCOUNT_SNAPSHOT_SCHEMA),
    "event_id": _Write("text", "event_id"),
    "account_id": _Write("text", "account_id"),
    "platform": _Write("text", "platform"),
    "entity_id": _Write("text", "entity_id"),
    "handle": _Write("text", "account_id[len(platform) + 1 :]"),  # ids are handles (see Simulator)
    "observed_at": _Write("text", "observed_at"),
    "followers": _Write("number", "followers"),
    "following": _Write("member", "following", when_gone=False),
    "posts_total": _Write("number", "posts_total", when_gone=False),
    "posts_30d": _Write("number", "posts_30d", when_gone=False),
    "interactions_30d": _Write("number", "interactions_30d", when_gone=False),
    "replies_30d": _Write("number", "replies_30d", when_gone=False),
    "automated_posts_30d": _Write("number", "automated_posts_30d", when_gone=False),
    "status": _Write("text", "status"),
    "source": _Write("constant", _SOURCE),
}
# The variables of a row: the columns Batch._event_bytes passes, by name; observed_at is the batch's,
# and status too for the active rows.
_ROW = (
    "event_id",
    "account_id",
    "platform",
    "entity_id",
    "following",
    "followers",
    "posts_total",
    "posts_30d",
    "interactions_30d",
    "replies_30d",
    "automated_posts_30d",
)
_EventWriter = Callable[[str, str, Mapping[str, list[Any]]], list[bytes]]


def _event_writer(*, gone: bool, fields: tuple[str, ...] = SNAPSHOT_FIELDS) -> _EventWriter:
    """``write(observed_at, status, columns)``: the event text of each row of ``columns`` (a list for
    each variable of _ROW, by name; ``status`` is a column too when ``gone``), as one f-string per row,
    generated from _WRITES in the model's field order: as fast as writing that f-string by hand."""
    missing = [name for name in fields if name not in _WRITES]
    if missing or len(_WRITES) != len(fields):
        raise ImportError(
            "the simulator does not say how it writes every field of AccountSnapshot: "
            f"missing {missing}, unknown {sorted(set(_WRITES) - set(fields))}"
        )
    members = []
    for name in fields:
        write = _WRITES[name]
        if gone and not write.when_gone:
            continue
        key = ',"' + name + '":'
        if write.how == "constant":
            members.append(key + json.dumps(write.what).replace("{", "{{").replace("}", "}}"))
        elif write.how == "text":
            members.append(key + '"{' + write.what + '}"')
        elif write.how == "number":
            members.append(key + "{" + write.what + "}")
        else:  # member: its own comma and key, or nothing
            members.append("{" + write.what + "}")
    text = "".join(members)
    if not text.startswith(","):
        raise ImportError("the first field of AccountSnapshot cannot be left out")
    variables = (*_ROW, "status") if gone else _ROW
    zipped = ", ".join(f"columns[{v!r}]" for v in variables)
    source = (
        "def write(observed_at, status, columns):\n"
        f"    return [f{'{{' + text[1:] + '}}'!r}.encode() "
        f"for {', '.join(variables)} in zip({zipped}, strict=True)]\n"
    )
    namespace: dict[str, Any] = {}
    # The source is built from this module's constants only (field names, expressions, constants).
    exec(source, namespace)  # noqa: S102
    writer: _EventWriter = namespace["write"]
    return writer


_WRITE_ACTIVE = _event_writer(gone=False)
_WRITE_GONE = _event_writer(gone=True)


def _member_json(name: str, values: list[int]) -> list[str]:
    """',"name":value' for each value, "" where it is negative (the account has no such figure)."""
    key = ',"' + name + '":'
    return [f"{key}{value}" if value >= 0 else "" for value in values]


class Batch:
    """One observation of every visible account at one simulated instant, as columns.

    The numpy columns are aligned with :attr:`index` (account indices into :attr:`Simulator.account_ids`).
    Figures other than ``followers`` (0) are meaningless where ``status`` is not active: the events leave
    them out, as a poller that finds an account gone can read none.
    """

    def __init__(
        self, sim: Simulator, t: datetime, index: I64, columns: Mapping[str, Ints], status: U8
    ) -> None:
        self.t = t
        self.observed_at = format_timestamp(t)
        self.index = index
        self.followers = columns["followers"]
        self.posts_total = columns["posts_total"]
        self.posts_30d = columns["posts_30d"]
        self.interactions_30d = columns["interactions_30d"]
        self.replies_30d = columns["replies_30d"]
        self.automated_posts_30d = columns["automated_posts_30d"]
        self.status = status
        self._sim = sim

    def gone(self) -> Batch:
        """The rows of the accounts that are not active (deleted or suspended), as a batch of their own."""
        keep = np.flatnonzero(self.status != _STATUS_ACTIVE)
        columns = {
            name: getattr(self, name)[keep]
            for name in (
                "followers",
                "posts_total",
                "posts_30d",
                "interactions_30d",
                "replies_30d",
                "automated_posts_30d",
            )
        }
        return Batch(self._sim, self.t, self.index[keep], columns, self.status[keep])

    def __len__(self) -> int:
        return len(self.index)

    def account_ids(self, lo: int = 0, hi: int | None = None) -> list[str]:
        """The account id of each row (of rows ``lo:hi``)."""
        return _gather(self._sim.account_ids, self.index[lo:hi])

    def event_bytes(self) -> list[bytes]:
        """Each row as ``AccountSnapshot(...).to_event_bytes()`` would write it, without building models."""
        return self._event_bytes(0, len(self))[1]

    def records(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs for the snapshots topic: key = account_id (UTF-8), value = the event."""
        return [record for chunk in self.iter_records(len(self) or 1) for record in chunk]

    def iter_records(self, chunk_size: int = 10_000) -> Iterator[list[tuple[bytes, bytes]]]:
        """:meth:`records` in chunks of ``chunk_size``, so that a tick of 300,000 accounts is never all
        in memory as bytes at once (a producer sends chunk after chunk)."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        for lo in range(0, len(self), chunk_size):
            ids, values = self._event_bytes(lo, min(lo + chunk_size, len(self)))
            yield [(aid.encode(), value) for aid, value in zip(ids, values, strict=True)]

    def _event_bytes(self, lo: int, hi: int) -> tuple[list[str], list[bytes]]:
        sim = self._sim
        index = self.index[lo:hi]
        ids = _gather(sim.account_ids, index)
        platforms = _gather(sim._platform_names, index)
        entities = _gather(sim._account_entity_ids, index)
        following = _gather(sim._following_json, index)
        columns = {
            "event_id": _event_ids(ids, self.observed_at),
            "account_id": ids,
            "platform": platforms,
            "entity_id": entities,
            "following": following,
            "followers": self.followers[lo:hi].tolist(),
            "posts_total": self.posts_total[lo:hi].tolist(),
            "posts_30d": self.posts_30d[lo:hi].tolist(),
            "interactions_30d": self.interactions_30d[lo:hi].tolist(),
            "replies_30d": self.replies_30d[lo:hi].tolist(),
            "automated_posts_30d": self.automated_posts_30d[lo:hi].tolist(),
        }
        # Written for the common (active) case; gone accounts are redone below.
        out = _WRITE_ACTIVE(self.observed_at, _STATUS_TEXT[_STATUS_ACTIVE], columns)
        gone = np.flatnonzero(self.status[lo:hi]).tolist()
        if gone:
            picked = {name: _gather_list(column, gone) for name, column in columns.items()}
            picked["status"] = [_STATUS_TEXT[s] for s in self.status[lo:hi][gone].tolist()]
            for j, value in zip(gone, _WRITE_GONE(self.observed_at, "", picked), strict=True):
                out[j] = value
        return ids, out

    def dicts(self) -> list[dict[str, Any]]:
        """Each row as the JSON object of its event (what ``json.loads`` of :meth:`event_bytes` gives)."""
        return [orjson.loads(value) for value in self.event_bytes()]

    def models(self) -> list[AccountSnapshot]:
        """Each row as a validated pydantic model: the slow, obviously correct path."""
        return [AccountSnapshot.model_validate(row) for row in self.dicts()]


_T = TypeVar("_T")


def _gather_list(items: list[_T], index: list[int]) -> list[_T]:
    """``[items[i] for i in index]`` for a short list of indices."""
    return [items[i] for i in index]


def _gather(items: list[_T], index: I64) -> list[_T]:
    """``[items[i] for i in index]``, at C speed."""
    if len(index) == 0:
        return []
    if len(index) == 1:
        return [items[int(index[0])]]
    return list(operator.itemgetter(*index.tolist())(items))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Where the 16 bytes of a UUID go in its 36-character text (two hex digits each, dashes between groups).
_UUID_BYTE_POSITIONS = (0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34)


def _event_ids(account_ids: list[str], observed_at: str) -> list[str]:
    """UUIDv5(EVENT_ID_NAMESPACE, ``account_id|observed_at``) of each account, as ``derive_event_id``
    computes it one at a time; here the hashing is one C call per id and the rest is vectorised."""
    if not account_ids:
        return []
    prefix = EVENT_ID_NAMESPACE.bytes
    tail = ("|" + observed_at).encode()
    sha1 = hashlib.sha1
    digests = b"".join(
        [sha1(prefix + aid.encode() + tail, usedforsecurity=False).digest() for aid in account_ids]
    )
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = np.full((len(account_ids), 36), ord("-"), dtype=np.uint8)
    for byte, position in enumerate(_UUID_BYTE_POSITIONS):
        text[:, position] = _HEX_DIGITS[raw[:, byte] >> 4]
        text[:, position + 1] = _HEX_DIGITS[raw[:, byte] & 0x0F]
    joined = text.tobytes().decode("ascii")
    return [joined[o : o + 36] for o in range(0, len(joined), 36)]


# --- The simulator.


class Simulator:
    """A seeded world of official accounts, advanced day by day; see the module docstring for the API."""

    def __init__(
        self,
        entities: Iterable[EntityInput],
        params: SimulatorParams | None = None,
        seed: int = 0,
        origin: datetime = DEFAULT_ORIGIN,
    ) -> None:
        if seed < 0:
            raise ValueError("seed must be a non-negative integer")
        if origin.tzinfo is None:
            raise ValueError("origin must be an aware datetime")
        self.params = params or SimulatorParams()
        if self.params.scale <= 0:
            raise ValueError("scale must be positive")
        self.seed = seed
        utc = origin.astimezone(UTC)
        # The day grid starts at midnight UTC so that its weekdays (seasonality) are calendar weekdays.
        self.origin = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
        self._events_by_day: dict[int, list[InjectedEvent]] = {}
        self._build_registry(entities)
        self._reset()

    # -- The registry: who has which account, created when, with which lifelong traits.

    def _build_registry(self, entities: Iterable[EntityInput]) -> None:
        p = self.params
        rows: dict[str, tuple[str, float | None]] = {}
        for entity in entities:
            entity_id, name, inhabitants = _entity_fields(entity)
            if not _SAFE_JSON_TEXT.fullmatch(entity_id):
                raise ValueError(f"entity_id {entity_id!r} is not a KIND:code entity id")
            rows[entity_id] = (name, inhabitants)  # a later row overrides, as an entities file does
        entity_ids = sorted(rows)  # the input order must not change the world
        categories = [Category.of_entity_id(eid) for eid in entity_ids]
        population = np.array(
            [
                pop if (pop := rows[eid][1]) is not None else p.categories[cat].default_population
                for eid, cat in zip(entity_ids, categories, strict=True)
            ],
            dtype=np.float64,
        )
        stems = _entity_stems(entity_ids, [rows[eid][0] for eid in entity_ids], categories)
        self._entity_ids = entity_ids

        models = [p.platforms[pl] for pl in PLATFORMS]
        cat = np.array([CATEGORIES.index(c) for c in categories], dtype=np.int64)
        n_ent, n_plat = len(entity_ids), len(PLATFORMS)
        log_pop = np.log10(np.maximum(population, 1.0))
        reference = np.log10([p.categories[c].reference_population for c in CATEGORIES])[cat]
        slope_factor = np.array([p.categories[c].presence_slope_factor for c in CATEGORIES])[cat]
        follow_factor = np.array([p.categories[c].followers_factor for c in CATEGORIES])[cat]
        posts_base = np.array([p.categories[c].posts_per_day for c in CATEGORIES])[cat] * (
            10 ** ((log_pop - reference) * p.posting_population_elasticity)
        )
        logit_table = np.array(
            [[m.presence_logit[c] for c in CATEGORIES] for m in models]
        )  # platform, category
        slope = _per_platform(models, "presence_slope")
        opens_s = np.array(
            [self._seconds(datetime(m.opens.year, m.opens.month, m.opens.day, tzinfo=UTC)) for m in models]
        )
        lag_median = _per_platform(models, "adoption_lag_years")
        k, beta = _per_platform(models, "followers_k"), _per_platform(models, "followers_beta")

        horizon_s = p.horizon_years * DAYS_PER_YEAR * DAY_SECONDS
        rng = np.random.default_rng([self.seed, _Stream.REGISTRY])
        whole = math.floor(p.scale)
        replicas = whole + (rng.random(n_ent) < p.scale - whole)
        parts: list[dict[str, npt.NDArray[Any]]] = []
        for replica in range(int(replicas.max(initial=0))):
            propensity = rng.normal(0.0, p.propensity_sd, n_ent)
            logit = (
                logit_table[:, cat].T
                + slope[None, :] * (slope_factor * (log_pop - reference))[:, None]
                + propensity[:, None]
            )
            present = (rng.random((n_ent, n_plat)) < _sigmoid(logit)) & (replicas > replica)[:, None]
            second_logit = p.second_account_logit + p.second_account_slope * (log_pop - 5.0)
            second = present & (rng.random((n_ent, n_plat)) < _sigmoid(second_logit)[:, None])
            for role, mask in ((_ROLE_MAIN, present), (_ROLE_TOURISM, second)):
                ent, plat = np.nonzero(mask)
                n = len(ent)
                z = rng.standard_normal((n, 3))
                lag = lag_median[plat] * np.exp(
                    -p.adoption_earliness * logit[ent, plat] + p.adoption_lag_sigma * z[:, 0]
                )
                if role == _ROLE_TOURISM:
                    lag += rng.exponential(2.0, n)  # tourism offices followed their city, later
                # Beyond a century the account will never be seen; the cap keeps datetimes valid.
                created = opens_s[plat] + np.round(np.minimum(lag, 100.0) * DAYS_PER_YEAR * DAY_SECONDS)
                potential = k[plat] * follow_factor[ent] * population[ent] ** beta[plat] * np.exp(
                    p.followers_sigma * z[:, 1] + p.followers_propensity * propensity[ent]
                ) * (
                    p.second_account_followers if role == _ROLE_TOURISM else 1.0
                ) + p.followers_floor * np.exp(0.5 * z[:, 2])
                kept = created <= horizon_s
                m = int(kept.sum())
                # Compact dtypes: at 300,000 accounts these columns exist three times during the build.
                parts.append(
                    {
                        "ent": ent[kept].astype(np.int32),
                        "plat": plat[kept].astype(np.uint8),
                        "replica": np.full(m, replica, dtype=np.int32),
                        "role": np.full(m, _ROLE_SYNTHETIC if replica else role, dtype=np.uint8),
                        "tourism": np.full(m, role == _ROLE_TOURISM),
                        "created": created[kept].astype(np.int64),
                        "potential": potential[kept].astype(np.float32),
                        "posts_base": posts_base[ent[kept]].astype(np.float32),
                        "z": rng.standard_normal((n, 5)).astype(np.float32)[kept],
                        "u": rng.random((n, 4)).astype(np.float32)[kept],
                    }
                )
        if parts:
            merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        else:
            merged = {
                key: np.zeros((0, 5) if key == "z" else (0, 4) if key == "u" else 0) for key in _PART_KEYS
            }
        del parts
        # A stable order: entity, replica, platform, main before tourism.
        order = np.lexsort((merged["tourism"], merged["plat"], merged["replica"], merged["ent"]))
        self._init_traits({key: merged.pop(key)[order] for key in list(merged)}, models, stems)

    def _init_traits(
        self, col: dict[str, npt.NDArray[Any]], models: list[PlatformModel], stems: list[str]
    ) -> None:
        p = self.params
        plat, ent = col["plat"], col["ent"]
        z, u = col["z"], col["u"]
        self.n_accounts = n = len(plat)
        self._plat = plat
        self._role = col["role"].astype(np.uint8)
        self._created_s = col["created"].astype(np.int64)
        self._potential = col["potential"].astype(np.float32)
        self._automated = u[:, 0] < _per_platform(models, "automated_share")[plat]
        gross = (
            _per_platform(models, "growth_monthly") + _per_platform(models, "churn_monthly")
        ) / DAYS_PER_MONTH
        # Lifelong traits in float32: half the memory, and their precision is not the model's limit.
        self._gain_rate = _f32(gross[plat] * np.exp(p.growth_sigma * z[:, 0] - p.growth_sigma**2 / 2))
        self._churn_rate = _f32(_per_platform(models, "churn_monthly")[plat] / DAYS_PER_MONTH)
        self._post_rate = _f32(
            col["posts_base"]
            * _per_platform(models, "posts_factor")[plat]
            * np.exp(p.posting_sigma * z[:, 1])
            * np.where(self._automated, p.automated_posting_factor, 1.0)
        )
        self._engagement = _f32(
            _per_platform(models, "engagement")[plat]
            * np.exp(p.engagement_sigma * z[:, 2])
            * np.where(self._automated, p.automated_engagement_factor, 1.0)
        )
        silent = (u[:, 1] < p.silent_share) | self._automated
        replies = _per_platform(models, "reply_ratio")[plat] * np.exp(p.reply_sigma * z[:, 3])
        self._reply_ratio = _f32(np.where(silent, 0.0, replies))
        crossposting = u[:, 2] < p.crossposting_share
        (lo, hi), (clo, chi) = p.automated_share_range, p.crossposting_range
        self._auto_share = _f32(
            np.where(
                self._automated,
                lo + (hi - lo) * u[:, 3],
                np.where(crossposting, clo + (chi - clo) * u[:, 3], 0.0),
            )
        )
        has_following = np.array([m.following_median is not None for m in models])[plat]
        following = np.rint(
            _per_platform(models, "following_median")[plat] * np.exp(p.following_sigma * z[:, 4])
        )
        self._following = np.where(has_following, following, -1).astype(np.int32)

        # Strings, built once. Ids are handles: the contract's account id when no platform id is known.
        platform_names = [pl.value for pl in PLATFORMS]
        account_ids: list[str] = []
        for e, pl, tourism, rep in zip(
            ent.tolist(), plat.tolist(), col["tourism"].tolist(), col["replica"].tolist(), strict=True
        ):
            handle = stems[e] + ("_tourisme" if tourism else "") + (f"_s{rep + 1}" if rep else "")
            account_ids.append(f"{platform_names[pl]}:{handle}")
        self._account_ids = account_ids
        self._platform_names = [platform_names[i] for i in plat.tolist()]
        self._account_entity_ids = [self._entity_ids[i] for i in ent.tolist()]
        self._following_json = _member_json("following", self._following.tolist())
        assert n == len(account_ids)

    @property
    def account_ids(self) -> list[str]:
        """Account ids by account index (the order of every column); do not modify."""
        return self._account_ids

    def accounts(self, at: datetime | None = None) -> list[SimAccount]:
        """The registry: every account, or only those created at or before ``at``."""
        limit = math.inf if at is None else self._seconds(at)
        out = []
        for i, (aid, created, role) in enumerate(
            zip(self._account_ids, self._created_s.tolist(), self._role.tolist(), strict=True)
        ):
            if created <= limit:
                platform = PLATFORMS[self._plat[i]]
                out.append(
                    SimAccount(
                        account_id=aid,
                        platform=platform,
                        handle=aid[len(platform.value) + 1 :],
                        entity_id=self._account_entity_ids[i],
                        created_at=self._at(created),
                        role=_ROLE_NAMES[role],
                        automated=bool(self._automated[i]),
                    )
                )
        return out

    def accounts_csv(self, at: datetime | None = None) -> str:
        """The registry as an accounts file: ``entity_id,platform,handle,account_id`` (CONTRACT.md)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["entity_id", "platform", "handle", "account_id"])
        for account in self.accounts(at):
            writer.writerow([account.entity_id, account.platform.value, account.handle, account.account_id])
        return buffer.getvalue()

    # -- State: the world at midnight of day ``self._day``, plus the visible figures of the day before.

    def _reset(self) -> None:
        """The state at midnight of ``origin`` (day 0), drawn from the seed alone."""
        p = self.params
        n = self.n_accounts
        rng = np.random.default_rng([self.seed, _Stream.INIT])
        age_years = np.maximum(-self._created_s, 0) / (DAYS_PER_YEAR * DAY_SECONDS)
        newborn = p.new_account_followers * np.exp(rng.standard_normal(n))
        maturity = 1.0 - np.exp(-age_years / p.maturation_years)
        self._followers = np.where(self._created_s <= 0, self._potential * maturity, 0.0) + newborn
        self._initial_followers = np.rint(newborn).astype(np.int32)
        self._excess = np.zeros(n)  # contest followers who will unfollow again
        posts_before = self._post_rate * age_years * DAYS_PER_YEAR * np.exp(0.3 * rng.standard_normal(n))
        self._posts_total = np.rint(posts_before).astype(np.int64)
        self._deleted_s = np.full(n, _NEVER, dtype=np.int64)
        self._suspended_from = np.full(n, _NEVER, dtype=np.int64)
        self._suspended_until = np.full(n, _NEVER, dtype=np.int64)
        self._dormant_from = np.full(n, _NEVER_DAY, dtype=np.int32)  # days, not seconds
        self._dormant_until = np.full(n, _NEVER_DAY, dtype=np.int32)
        self._ring_posts = np.zeros((ROLLING_DAYS, n), dtype=np.uint8)
        self._ring_auto = np.zeros((ROLLING_DAYS, n), dtype=np.uint8)
        self._ring_replies = np.zeros((ROLLING_DAYS, n), dtype=np.uint8)
        self._ring_interactions = np.zeros((ROLLING_DAYS, n), dtype=np.uint16)  # log-coded, see below
        self._posts_30d = np.zeros(n, dtype=np.int32)
        self._auto_30d = np.zeros(n, dtype=np.int32)
        self._replies_30d = np.zeros(n, dtype=np.int32)
        self._interactions_30d = np.zeros(n, dtype=np.int64)
        # The 30 days before origin, so that the first snapshots already have full 30-day counts.
        for day in range(-ROLLING_DAYS, 0):
            posting = self._created_s <= day * DAY_SECONDS
            self._post_day(np.random.default_rng([self.seed, _Stream.INIT, day + ROLLING_DAYS]), day, posting)
        self._day = 0
        self._prev = self._visible()

    def _visible(self) -> tuple[F64, I64, I32, I64, I32, I32]:
        return (
            self._followers.copy(),
            self._posts_total.copy(),
            self._posts_30d.copy(),
            self._interactions_30d.copy(),
            self._replies_30d.copy(),
            self._auto_30d.copy(),
        )

    def _seconds(self, t: datetime) -> float:
        if t.tzinfo is None:
            raise ValueError("naive datetime: simulated instants need an offset")
        return (t - self.origin).total_seconds()

    def _at(self, seconds: float) -> datetime:
        return self.origin + timedelta(seconds=seconds)

    def _gen(self, stream: int, day: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, day])

    def _advance_to(self, day: int) -> None:
        """Bring the state to midnight of ``day``, replaying from origin when ``day`` is in the past."""
        if day < self._day:
            self._reset()
        while self._day < day:
            self._step()

    def _step(self) -> None:
        """Simulate day ``self._day``: status events, followers, contests, purges, posting."""
        p = self.params
        d = self._day
        s0, s1 = d * DAY_SECONDS, (d + 1) * DAY_SECONDS
        # Snapshots inside day d read midnight d from here (and midnight d + 1 from the state).
        self._prev = self._visible()
        suspended = (self._suspended_from <= s0) & (s0 < self._suspended_until)
        live = (self._created_s <= s0) & (self._deleted_s > s0) & ~suspended

        # Status events first: an account deleted, suspended or gone silent today gets no contest.
        events = self._draw_deleted(d, live)
        events += self._draw_suspended(d, live & (self._deleted_s >= s1))
        healthy = (
            live & (self._deleted_s >= s1) & ~((self._suspended_from >= s0) & (self._suspended_from < s1))
        )
        was_dormant = (self._dormant_from <= d) & (d < self._dormant_until)
        events += self._draw_dormant(d, healthy & ~was_dormant & (self._posts_30d >= p.dormant_min_posts_30d))
        dormant = (self._dormant_from <= d) & (d < self._dormant_until)

        # Followers: new follows are Poisson around organic growth plus the catch-up of a young account,
        # seasonal by weekday and shaken by a daily shock; unfollows are Poisson around the churn.
        weekday = (self.origin + timedelta(days=d)).weekday()
        gen = self._gen(_Stream.FOLLOWERS, d)
        # The exact one-day step of F' = (potential - F) / maturation: 1/maturation a day when slow,
        # never past the potential when fast.
        approach = -math.expm1(-1.0 / (p.maturation_years * DAYS_PER_YEAR))
        catch_up = np.maximum(self._potential - self._followers, 0.0) * approach
        gain = (self._gain_rate * self._followers + catch_up) * np.where(
            dormant, p.dormant_growth_factor, 1.0
        )
        churn = self._churn_rate * self._followers
        # Bounded at 3 standard deviations: a normal day never brings more than ~2.3 times the usual new
        # follows, so that jumps beyond that are injected events, whose ground truth is known.
        shock = _mean_one_noise(gen, p.daily_shock_sigma, self.n_accounts, clip=3.0)
        self._followers += gen.poisson(np.where(live, gain * shock * p.weekday_growth[weekday], 0.0))
        self._followers -= gen.poisson(np.where(live, churn, 0.0))
        decay = self._excess * -math.expm1(-1.0 / p.spike_decay_days)
        self._followers -= decay
        self._excess -= decay
        events += self._draw_spikes(d, healthy, gain + churn)
        events += self._draw_purges(d, healthy)
        np.maximum(self._followers, 0.0, out=self._followers)

        self._post_day(self._gen(_Stream.POSTING, d), d, live & ~dormant)
        self._events_by_day.setdefault(d, events)
        self._day = d + 1

    def _post_day(self, gen: np.random.Generator, d: int, posting: Bool) -> None:
        """Posts, automated posts, replies and interactions of day ``d``, into the 30-day rings."""
        p = self.params
        weekday = (self.origin + timedelta(days=d)).weekday()
        rate = np.where(posting, self._post_rate * p.weekday_posting[weekday], 0.0)
        posts = np.minimum(gen.poisson(rate), _MAX_DAILY_POSTS)
        auto = gen.binomial(posts, self._auto_share)
        replies = np.minimum(gen.poisson(self._reply_ratio * (posts - auto)), _MAX_DAILY_POSTS)
        audience = np.maximum(self._followers, 10.0)
        per_post = self._engagement * audience * (audience / 1000.0) ** p.engagement_size_elasticity
        noise = _mean_one_noise(gen, p.engagement_daily_sigma, self.n_accounts)
        interactions = np.minimum(gen.poisson(posts * per_post * noise), _MAX_DAILY_INTERACTIONS)
        slot = d % ROLLING_DAYS
        for ring, total, today in (
            (self._ring_posts, self._posts_30d, posts),
            (self._ring_auto, self._auto_30d, auto),
            (self._ring_replies, self._replies_30d, replies),
        ):
            total -= ring[slot]
            ring[slot] = today
            total += ring[slot]
        # A day's interactions are kept as a uint16 log code (half the memory of uint32 at 300,000
        # accounts): exact up to 2,900 a day, within 0.03% above. The 30-day total adds and later
        # removes the same decoded figure, so it stays the exact sum of what the ring holds.
        code = np.rint(np.log2(interactions + 1.0) * _LOG_CODE_SCALE).astype(np.uint16)
        self._interactions_30d -= _decode_interactions(self._ring_interactions[slot])
        self._ring_interactions[slot] = code
        self._interactions_30d += _decode_interactions(code)
        self._posts_total += posts

    # -- Injected events; each kind draws from its own stream, so switching one off leaves the others.

    def _event(
        self, kind: EventKind, i: int, start: float, end: float | None, magnitude: float, relative: float
    ) -> InjectedEvent:
        return InjectedEvent(
            kind=kind,
            account_id=self._account_ids[i],
            start=self._at(start),
            end=None if end is None else self._at(end),
            magnitude=magnitude,
            relative=relative,
            platform=PLATFORMS[self._plat[i]],
            entity_id=self._account_entity_ids[i],
        )

    def _hits(
        self, stream: int, d: int, eligible: Bool, rate_per_year: float
    ) -> tuple[np.random.Generator, I64]:
        gen = self._gen(stream, d)
        draw = gen.random(self.n_accounts)
        return gen, np.flatnonzero(eligible & (draw < rate_per_year / DAYS_PER_YEAR))

    def _draw_deleted(self, d: int, eligible: Bool) -> list[InjectedEvent]:
        gen, idx = self._hits(_Stream.DELETED, d, eligible, self.params.deleted_rate_per_year)
        instants = d * DAY_SECONDS + gen.integers(0, DAY_SECONDS, len(idx))
        self._deleted_s[idx] = instants
        return [
            self._event(EventKind.DELETED, i, s, None, -float(np.rint(self._followers[i])), -1.0)
            for i, s in zip(idx.tolist(), instants.tolist(), strict=True)
        ]

    def _draw_suspended(self, d: int, eligible: Bool) -> list[InjectedEvent]:
        p = self.params
        gen, idx = self._hits(_Stream.SUSPENDED, d, eligible, p.suspended_rate_per_year)
        start = d * DAY_SECONDS + gen.integers(0, DAY_SECONDS, len(idx))
        days = p.suspension_days_median * np.exp(p.suspension_days_sigma * gen.standard_normal(len(idx)))
        end = start + np.maximum(np.rint(days * DAY_SECONDS), 3600).astype(np.int64)
        self._suspended_from[idx], self._suspended_until[idx] = start, end
        return [
            self._event(EventKind.SUSPENDED, i, s, e, -float(np.rint(self._followers[i])), -1.0)
            for i, s, e in zip(idx.tolist(), start.tolist(), end.tolist(), strict=True)
        ]

    def _draw_dormant(self, d: int, eligible: Bool) -> list[InjectedEvent]:
        p = self.params
        gen, idx = self._hits(_Stream.DORMANT, d, eligible, p.dormant_rate_per_year)
        days = p.dormant_days_median * np.exp(p.dormant_days_sigma * gen.standard_normal(len(idx)))
        until = d + np.maximum(np.rint(days), ROLLING_DAYS + 1).astype(np.int64)
        self._dormant_from[idx], self._dormant_until[idx] = d, until
        return [
            self._event(
                EventKind.DORMANT, i, d * DAY_SECONDS, e * DAY_SECONDS, -float(self._posts_30d[i]), -1.0
            )
            for i, e in zip(idx.tolist(), until.tolist(), strict=True)
        ]

    def _draw_spikes(self, d: int, eligible: Bool, flow: F64) -> list[InjectedEvent]:
        p = self.params
        gen, idx = self._hits(_Stream.SPIKE, d, eligible, p.spike_rate_per_year)
        lo, hi = p.spike_multiple_range
        multiple = np.clip(
            p.spike_multiple_median * np.exp(p.spike_multiple_sigma * gen.standard_normal(len(idx))), lo, hi
        )
        typical = np.maximum(flow[idx], p.spike_min_typical)
        added = np.rint(multiple * typical)
        share_lo, share_hi = p.spike_decay_share
        self._followers[idx] += added
        self._excess[idx] += added * gen.uniform(share_lo, share_hi, len(idx))
        s0 = d * DAY_SECONDS
        return [
            self._event(EventKind.SPIKE, i, s0, s0 + DAY_SECONDS, a, a / t)
            for i, a, t in zip(idx.tolist(), added.tolist(), typical.tolist(), strict=True)
        ]

    def _draw_purges(self, d: int, eligible: Bool) -> list[InjectedEvent]:
        p = self.params
        gen = self._gen(_Stream.PURGE, d)
        happens = gen.random(len(PLATFORMS))
        events: list[InjectedEvent] = []
        s0 = d * DAY_SECONDS
        for k, platform in enumerate(PLATFORMS):
            if happens[k] >= p.platforms[platform].purge_rate_per_year / DAYS_PER_YEAR:
                continue
            draw = gen.random(self.n_accounts)
            hit = eligible & (self._plat == k) & (self._followers >= p.purge_min_followers)
            idx = np.flatnonzero(hit & (draw < p.purge_account_share))
            lo, hi = p.purge_fraction_range
            share = np.clip(
                p.purge_fraction_median * np.exp(p.purge_fraction_sigma * gen.standard_normal(len(idx))),
                lo,
                hi,
            )
            before = self._followers[idx]
            removed = np.rint(before * share)
            self._followers[idx] -= removed
            events += [
                self._event(EventKind.PURGE, i, s0, s0 + DAY_SECONDS, -r, -r / b)
                for i, r, b in zip(idx.tolist(), removed.tolist(), before.tolist(), strict=True)
                if r >= 1
            ]
        return events

    # -- Observation.

    def observe(self, t: datetime) -> Batch:
        """One snapshot of every account visible at ``t`` (created, and not deleted for long)."""
        s = self._seconds(t)
        if s < 0:
            raise ValueError(
                f"{format_timestamp(t)} is before the simulation's origin {format_timestamp(self.origin)}"
            )
        d = int(s // DAY_SECONDS)
        frac = (s - d * DAY_SECONDS) / DAY_SECONDS
        self._advance_to(d + 1)
        followers_before, posts_total, posts_30d, interactions_30d, replies_30d, auto_30d = self._prev
        gone_for = self.params.gone_report_days * DAY_SECONDS
        index = np.flatnonzero((self._created_s <= s) & (s < self._deleted_s + gone_for))
        status = np.zeros(len(index), dtype=np.uint8)
        status[(self._suspended_from[index] <= s) & (s < self._suspended_until[index])] = _STATUS_SUSPENDED
        status[self._deleted_s[index] <= s] = _STATUS_DELETED
        before = followers_before[index]
        # Within a day, followers move linearly from one midnight's figure to the next.
        followers = np.rint(before + frac * (self._followers[index] - before)).astype(np.int64)
        followers[status != _STATUS_ACTIVE] = 0
        columns: dict[str, Ints] = {
            "followers": followers,
            "posts_total": posts_total[index],
            "posts_30d": posts_30d[index],
            "interactions_30d": interactions_30d[index],
            "replies_30d": replies_30d[index],
            "automated_posts_30d": auto_30d[index],
        }
        return Batch(self, t.astimezone(UTC), index, columns, status)

    def snapshots_at(self, t: datetime) -> list[AccountSnapshot]:
        """:meth:`observe` as validated pydantic models (slow: prefer ``observe(t).records()``)."""
        return self.observe(t).models()

    def run(
        self, start: datetime | None = None, end: datetime | None = None, step: timedelta = timedelta(days=1)
    ) -> Iterator[Batch]:
        """Observations at ``start``, ``start + step``… while before ``end`` (forever without one)."""
        for t in _times(self.origin if start is None else start, end, step):
            yield self.observe(t)

    def live(
        self,
        speed: float,
        step: timedelta = timedelta(hours=1),
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        not_after: Callable[[], datetime] | None = None,
    ) -> Iterator[Batch]:
        """:meth:`run` paced by the wall clock: simulated time advances ``speed`` times faster.

        The schedule is anchored at the first batch, so time spent by the consumer or in producing a
        batch does not accumulate as drift: a late batch is followed by the next without sleeping.
        ``not_after`` (e.g. ``lambda: datetime.now(UTC)``) holds back any batch whose simulated time is
        beyond it — ingest refuses snapshots from the future — so a simulation started in the past
        replays quickly up to now and then follows the wall clock.
        """
        if speed <= 0:
            raise ValueError("speed must be positive")
        first = self.origin if start is None else start
        wall_start = clock()
        for batch_time in _times(first, end, step):
            delay = wall_start + (batch_time - first).total_seconds() / speed - clock()
            if delay > 0:
                sleep(delay)
            if not_after is not None:
                while (ahead := (batch_time - not_after()).total_seconds()) > 0:
                    sleep(ahead)
            yield self.observe(batch_time)

    def events(self, start: datetime | None = None, end: datetime | None = None) -> list[InjectedEvent]:
        """The injected ground truth starting in [start, end) (default: origin to the simulated day).

        Events before ``end`` not yet simulated are simulated now (the state moves on; asking for an
        earlier snapshot afterwards replays from origin).
        """
        lo = 0.0 if start is None else max(self._seconds(start), 0.0)
        if end is not None:
            hi = self._seconds(end)
            self._advance_to(max(math.ceil(hi / DAY_SECONDS), 0))
        else:
            hi = float(self._day * DAY_SECONDS)
        found = [
            e
            for day, day_events in self._events_by_day.items()
            if lo < (day + 1) * DAY_SECONDS and day * DAY_SECONDS < hi
            for e in day_events
            if lo <= self._seconds(e.start) < hi
        ]
        created = self._created_s
        for i in np.flatnonzero((created >= lo) & (created < hi)).tolist():
            found.append(
                self._event(EventKind.NEW, i, float(created[i]), None, float(self._initial_followers[i]), 0.0)
            )
        found.sort(key=lambda e: (e.start, _KIND_ORDER[e.kind], e.account_id))
        return found


def _times(start: datetime, end: datetime | None, step: timedelta) -> Iterator[datetime]:
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    t = start
    while end is None or t < end:
        yield t
        t += step
