"""The simulator: deterministic, faithful to the event contract, calibrated, and honest about its ground
truth (every injected event shows in the series where and as big as it says)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from services.common.events import AccountSnapshot, derive_event_id
from services.common.names import AlertType, Category, Platform
from services.common.reference import Entity, collect, load_entities, parse_accounts_csv
from services.ingest.sources.simulator import (
    DEFAULT_ORIGIN,
    EventKind,
    InjectedEvent,
    Simulator,
    SimulatorParams,
)

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
# A few départements (Isère, Rhône, Bouches-du-Rhône) with every région and département: ~1,000
# entities, enough accounts for statistics and small enough to simulate weeks in milliseconds.
SUBSET_DEPARTEMENTS = frozenset({"38", "69", "13"})

Matrix = npt.NDArray[np.int64]


@pytest.fixture(scope="module")
def registry() -> list[Entity]:
    return load_entities()


@pytest.fixture(scope="module")
def subset(registry: list[Entity]) -> list[Entity]:
    return [
        e
        for e in registry
        if e.category in (Category.REGION, Category.DEPARTEMENT) or e.departement in SUBSET_DEPARTEMENTS
    ]


@pytest.fixture(scope="module")
def world(registry: list[Entity]) -> Simulator:
    """Every collectivité, default parameters, at the default origin (2025-01-01)."""
    return Simulator(registry, seed=7)


def busy(params: SimulatorParams | None = None) -> SimulatorParams:
    """Event rates high enough that a few weeks of a small subset see every kind, many times."""
    p = params or SimulatorParams()
    return dataclasses.replace(
        p,
        spike_rate_per_year=4.0,
        deleted_rate_per_year=1.0,
        suspended_rate_per_year=1.0,
        dormant_rate_per_year=2.0,
        platforms={
            platform: dataclasses.replace(model, purge_rate_per_year=25.0)
            for platform, model in p.platforms.items()
        },
    )


def still(params: SimulatorParams) -> SimulatorParams:
    """No organic growth or churn and every existing account already mature: followers then move only
    through injected events, so their sizes can be checked exactly."""
    return dataclasses.replace(
        params,
        maturation_years=0.001,
        platforms={
            platform: dataclasses.replace(model, growth_monthly=0.0, churn_monthly=0.0)
            for platform, model in params.platforms.items()
        },
    )


def series(sim: Simulator, times: Sequence[datetime]) -> dict[str, Matrix]:
    """Columns observed at each time as account-by-time matrices; -1 where the account is not visible."""
    names = ("followers", "status", "posts_total", "posts_30d")
    out = {name: np.full((sim.n_accounts, len(times)), -1, dtype=np.int64) for name in names}
    for j, t in enumerate(times):
        batch = sim.observe(t)
        for name in names:
            out[name][batch.index, j] = getattr(batch, name)
    return out


def days(n: int, start: datetime = DEFAULT_ORIGIN) -> list[datetime]:
    return [start + k * DAY for k in range(n)]


def all_bytes(sim: Simulator, times: Iterable[datetime]) -> bytes:
    return b"\n".join(value for t in times for value in sim.observe(t).event_bytes())


# --- Determinism.


def test_same_seed_gives_byte_identical_events_and_another_seed_does_not(subset: list[Entity]) -> None:
    times = [*days(4), DEFAULT_ORIGIN + 4 * DAY + timedelta(hours=3, minutes=20)]
    first, second = Simulator(subset, busy(), seed=11), Simulator(list(reversed(subset)), busy(), seed=11)
    assert all_bytes(first, times) == all_bytes(second, times)
    assert first.events() == second.events()
    assert first.accounts_csv() == second.accounts_csv()
    other = Simulator(subset, busy(), seed=12)
    assert all_bytes(other, times) != all_bytes(first, times)


def test_the_state_at_a_time_does_not_depend_on_how_time_was_walked(subset: list[Entity]) -> None:
    target = DEFAULT_ORIGIN + 6 * DAY + timedelta(hours=7)
    direct = Simulator(subset, busy(), seed=3).observe(target).event_bytes()
    hourly = Simulator(subset, busy(), seed=3)
    for _ in hourly.run(DEFAULT_ORIGIN, target, timedelta(hours=5)):
        pass
    assert hourly.observe(target).event_bytes() == direct
    replayed = Simulator(subset, busy(), seed=3)
    replayed.observe(target + 20 * DAY)
    assert replayed.observe(target).event_bytes() == direct  # going back replays from origin


def test_origin_is_a_parameter_not_the_wall_clock(subset: list[Entity]) -> None:
    sim = Simulator(subset, seed=1, origin=datetime(2013, 3, 5, 15, 30, tzinfo=UTC))
    assert sim.origin == datetime(2013, 3, 5, tzinfo=UTC)  # the day grid starts at midnight UTC
    batch = sim.observe(datetime(2013, 3, 6, 12, tzinfo=UTC))
    assert batch.observed_at == "2013-03-06T12:00:00Z"
    with pytest.raises(ValueError, match="before the simulation's origin"):
        sim.observe(datetime(2013, 3, 4, tzinfo=UTC))
    with pytest.raises(ValueError, match="naive"):
        sim.observe(datetime(2013, 3, 6))


# --- The event contract.


def test_fast_path_is_byte_identical_to_the_pydantic_model(subset: list[Entity]) -> None:
    sim = Simulator(subset, busy(), seed=5)
    batch = sim.observe(DEFAULT_ORIGIN + 12 * DAY + timedelta(hours=5, seconds=7))
    values = batch.event_bytes()
    statuses = Counter(batch.status.tolist())
    assert statuses[1] and statuses[2], "the batch should hold deleted and suspended accounts too"
    for value, row, model in zip(values, batch.dicts(), batch.models(), strict=True):
        parsed = AccountSnapshot.from_event_bytes(value)
        assert parsed.to_event_bytes() == value
        assert model.to_event_bytes() == value
        assert json.loads(value) == row
    assert {json.loads(v).get("following") is None for v in values} == {True, False}
    first = AccountSnapshot.from_event_bytes(values[0])
    assert first.event_id == derive_event_id(first.account_id, first.observed_at)
    assert first.source == "simulator"
    records = batch.records()
    assert [key for key, _ in records] == [a.encode() for a in batch.account_ids()]
    assert [value for _, value in records] == values
    assert [r for chunk in batch.iter_records(chunk_size=97) for r in chunk] == records


def test_each_event_holds_its_rows_figures(subset: list[Entity]) -> None:
    # dicts() and models() are read from the event text, so the text is checked here against the columns.
    sim = Simulator(subset, busy(), seed=5)
    batch = sim.observe(DEFAULT_ORIGIN + 12 * DAY + timedelta(hours=5, seconds=7))
    figures = ("posts_total", "posts_30d", "interactions_30d", "replies_30d", "automated_posts_30d")
    for i, (value, account_id) in enumerate(zip(batch.event_bytes(), batch.account_ids(), strict=True)):
        event = json.loads(value)
        platform, _, handle = account_id.partition(":")
        assert (event["account_id"], event["platform"], event["handle"]) == (account_id, platform, handle)
        assert event["followers"] == int(batch.followers[i])
        assert event["status"] == ("active", "deleted", "suspended")[int(batch.status[i])]
        if batch.status[i] == 0:
            assert [event[name] for name in figures] == [int(getattr(batch, name)[i]) for name in figures]
        else:
            assert not {"following", *figures} & set(event)


def test_snapshots_at_returns_validated_models(subset: list[Entity]) -> None:
    sim = Simulator(subset, seed=5)
    models = sim.snapshots_at(DEFAULT_ORIGIN + timedelta(hours=1))
    assert models and all(isinstance(m, AccountSnapshot) for m in models)
    assert len({m.account_id for m in models}) == len(models)


def test_accounts_file_is_a_valid_import_and_matches_the_events(subset: list[Entity]) -> None:
    sim = Simulator(subset, seed=5)
    good, bad = collect(parse_accounts_csv(sim.accounts_csv().splitlines()))
    assert bad == []
    assert [record.account_id for _, record in good] == sim.account_ids
    now = DEFAULT_ORIGIN + 3 * DAY
    existing = sim.accounts(at=now)
    assert all(a.created_at <= now for a in existing)
    assert {a.account_id for a in existing} == set(sim.observe(now).account_ids())
    assert {a.role for a in sim.accounts()} == {"main", "tourism"}


def test_scale_adds_synthetic_accounts(subset: list[Entity]) -> None:
    base = Simulator(subset, seed=2).n_accounts
    doubled = Simulator(subset, SimulatorParams(scale=2.0), seed=2)
    assert 1.7 * base < doubled.n_accounts < 2.3 * base
    synthetic = [a for a in doubled.accounts() if a.role == "synthetic"]
    assert synthetic and all(a.handle.endswith("_s2") for a in synthetic)
    assert len(set(doubled.account_ids)) == doubled.n_accounts
    assert 0.35 * base < Simulator(subset, SimulatorParams(scale=0.5), seed=2).n_accounts < 0.65 * base


# --- Calibration.


def presence(sim: Simulator, t: datetime) -> dict[tuple[str, Platform], set[str]]:
    """Entities with an active account, by (entity_id, platform) -> the set of their account ids."""
    batch = sim.observe(t)
    by_id = {a.account_id: a for a in sim.accounts(at=t)}
    present: dict[tuple[str, Platform], set[str]] = defaultdict(set)
    for account_id, status in zip(batch.account_ids(), batch.status.tolist(), strict=True):
        if status == 0:
            account = by_id[account_id]
            present[account.entity_id, account.platform].add(account_id)
    return present


def rate(present: dict[tuple[str, Platform], set[str]], entities: list[Entity], platform: Platform) -> float:
    return sum((e.entity_id, platform) in present for e in entities) / len(entities)


def test_presence_rates_follow_the_calibration(world: Simulator, registry: list[Entity]) -> None:
    present = presence(world, world.origin)
    by = defaultdict(list)
    for e in registry:
        by[e.category].append(e)
    communes = by[Category.COMMUNE]
    big = [e for e in communes if (e.population or 0) >= 100_000]
    small = [e for e in communes if (e.population or 0) < 1_000]
    fb, x = Platform.FACEBOOK, Platform.X
    assert rate(present, by[Category.REGION], fb) >= 0.9
    assert rate(present, by[Category.DEPARTEMENT], fb) >= 0.9
    # X over régions and départements together: 18 régions alone are too few for a stable rate.
    assert rate(present, by[Category.REGION] + by[Category.DEPARTEMENT], x) >= 0.85
    assert rate(present, big, fb) >= 0.9
    assert rate(present, small, fb) < 0.5 * rate(present, big, fb)
    assert (
        rate(present, small, fb)
        < rate(present, by[Category.EPCI], fb)
        < rate(present, by[Category.DEPARTEMENT], fb)
    )
    # Newer platforms are rarer than Facebook in every category.
    for category in Category:
        assert rate(present, by[category], Platform.MASTODON) < rate(present, by[category], fb)


def test_2013_looks_like_the_2012_2013_barometer(registry: list[Entity]) -> None:
    entities = [e for e in registry if e.category is not Category.COMMUNE or (e.population or 0) >= 50_000]
    sim = Simulator(entities, seed=4, origin=datetime(2013, 1, 1, tzinfo=UTC))
    present = presence(sim, sim.origin)
    regions = [e for e in entities if e.category is Category.REGION]
    big = [e for e in entities if e.category is Category.COMMUNE and (e.population or 0) >= 100_000]
    assert rate(present, regions, Platform.FACEBOOK) >= 0.9
    departements = [e for e in entities if e.category is Category.DEPARTEMENT]
    assert rate(present, regions + departements, Platform.X) >= 0.8
    assert rate(present, big, Platform.FACEBOOK) >= 0.9
    assert rate(present, regions, Platform.BLUESKY) == 0  # not yet open
    batch = sim.observe(sim.origin)
    accounts = {a.account_id: a for a in sim.accounts()}
    big_ids = {e.entity_id for e in big}
    followers = [
        f
        for aid, f in zip(batch.account_ids(), batch.followers.tolist(), strict=True)
        if accounts[aid].platform is Platform.FACEBOOK
        and accounts[aid].role == "main"
        and accounts[aid].entity_id in big_ids
    ]
    # "Tens of thousands to a few hundred thousand" fans for big cities' Facebook pages in 2013.
    assert 10_000 <= float(np.median(followers)) <= 100_000
    assert np.percentile(followers, 90) < 1_000_000


def test_followers_are_heavy_tailed_and_follow_population(world: Simulator, registry: list[Entity]) -> None:
    population = {e.entity_id: e.population for e in registry}
    batch = world.observe(world.origin)
    accounts = {a.account_id: a for a in world.accounts(at=world.origin)}
    pairs = [
        (population[a.entity_id], f)
        for aid, f in zip(batch.account_ids(), batch.followers.tolist(), strict=True)
        if (a := accounts[aid]).platform is Platform.FACEBOOK
        and a.role == "main"
        and a.entity_id.startswith("COM:")
        and population[a.entity_id]
    ]
    pop = np.array([p for p, _ in pairs], dtype=float)
    fol = np.array([f for _, f in pairs], dtype=float)
    spearman = np.corrcoef(pop.argsort().argsort(), fol.argsort().argsort())[0, 1]
    assert spearman > 0.6
    top = np.sort(fol)[::-1]
    assert top[: len(top) // 100].sum() > 0.2 * top.sum()  # the top 1% hold more than a fifth
    assert np.percentile(fol, 99) > 20 * np.median(fol)


def test_weekly_seasonality_in_growth_and_posting(registry: list[Entity]) -> None:
    sim = Simulator(registry, SimulatorParams().without_events(), seed=7)
    times = days(36)  # 2025-01-01 is a Wednesday
    cols = series(sim, times)
    both = (cols["followers"] >= 0).all(axis=1)
    gains = np.diff(cols["followers"][both], axis=1).sum(axis=0)
    posts = np.diff(cols["posts_total"][both], axis=1).sum(axis=0)
    weekend = np.array([t.weekday() >= 5 for t in times[:-1]])
    assert gains[weekend].mean() < 0.9 * gains[~weekend].mean()
    assert posts[weekend].mean() < 0.7 * posts[~weekend].mean()


def unusual(followers: Matrix) -> npt.NDArray[np.bool_]:
    """Daily moves outside a robust per-account band: the median move, plus or minus 15 median absolute
    deviations and 20 followers (the Poisson noise of small counts on a shaken day)."""
    moves = np.diff(followers, axis=1)
    median = np.median(moves, axis=1, keepdims=True)
    spread = np.median(np.abs(moves - median), axis=1, keepdims=True)
    return np.asarray(np.abs(moves - median) > 15 * spread + 20)


def test_without_events_growth_stays_within_normal_bounds(subset: list[Entity]) -> None:
    sim = Simulator(subset, SimulatorParams().without_events(), seed=9)
    followers = series(sim, days(61))["followers"]
    older = np.array([a.created_at < DEFAULT_ORIGIN - 365 * DAY for a in sim.accounts()])
    assert (followers[older] >= 0).all()  # nobody disappears
    assert older.sum() > 1000
    assert not unusual(followers[older]).any()
    assert sim.events() == [e for e in sim.events() if e.kind is EventKind.NEW]


def test_contest_spikes_stand_out_of_normal_growth(subset: list[Entity]) -> None:
    sim = Simulator(subset, busy(), seed=9)
    followers = series(sim, days(61))["followers"]
    where = index_of(sim)
    spikes = [e for e in sim.events(end=DEFAULT_ORIGIN + 60 * DAY) if e.kind is EventKind.SPIKE]
    assert len(spikes) > 100
    # At least 8 typical days at once (spike_multiple_range, up to the rounding of the added followers),
    # and a typical day is at least 4 followers (spike_min_typical).
    assert min(e.relative for e in spikes) >= 7.5 and min(e.magnitude for e in spikes) >= 8 * 4
    # So a simple robust rule finds nearly all of them, although other events shake the series too.
    flagged = unusual(np.where(followers >= 0, followers, 0))
    found = [flagged[where[e.account_id], day_of(e.start)] for e in spikes]
    assert sum(found) >= 0.9 * len(found)


# --- Ground truth.


@pytest.fixture(scope="module")
def still_world(subset: list[Entity]) -> tuple[Simulator, dict[str, Matrix], list[InjectedEvent]]:
    sim = Simulator(subset, still(busy()), seed=21)
    cols = series(sim, days(46))
    return sim, cols, sim.events(DEFAULT_ORIGIN, DEFAULT_ORIGIN + 45 * DAY)


def index_of(sim: Simulator) -> dict[str, int]:
    return {aid: i for i, aid in enumerate(sim.account_ids)}


def day_of(t: datetime) -> int:
    return (t - DEFAULT_ORIGIN) // DAY


def test_every_kind_of_event_is_injected(
    still_world: tuple[Simulator, dict[str, Matrix], list[InjectedEvent]],
) -> None:
    _, _, events = still_world
    kinds = Counter(e.kind for e in events)
    assert set(kinds) == set(EventKind), kinds
    assert {kind.alert_type for kind in EventKind} == set(AlertType)
    purges = Counter((e.start, e.platform) for e in events if e.kind is EventKind.PURGE)
    assert max(purges.values()) >= 10  # a purge hits many accounts of a platform at once


def test_spikes_and_purges_show_at_their_day_with_their_size(
    still_world: tuple[Simulator, dict[str, Matrix], list[InjectedEvent]],
) -> None:
    sim, cols, events = still_world
    where = index_of(sim)
    followers = cols["followers"]
    touched: dict[int, list[InjectedEvent]] = defaultdict(list)
    for e in events:
        touched[where[e.account_id]].append(e)
    old = {i for i, a in enumerate(sim.accounts()) if a.created_at < DEFAULT_ORIGIN - 30 * DAY}
    checked = Counter[EventKind]()
    for i, account_events in touched.items():
        first = account_events[0]
        # In a still world the first event of an account is the only cause of its first move.
        if i not in old or first.kind not in (EventKind.SPIKE, EventKind.PURGE):
            continue
        d = day_of(first.start)
        if d + 1 >= followers.shape[1] or any(day_of(e.start) == d for e in account_events[1:]):
            continue
        assert (np.diff(followers[i, : d + 1]) == 0).all(), first
        assert abs((followers[i, d + 1] - followers[i, d]) - first.magnitude) <= 1, first
        assert first.end == first.start + DAY
        if first.kind is EventKind.PURGE:
            assert first.relative == pytest.approx(first.magnitude / followers[i, d], abs=0.01)
        later = [day_of(e.start) for e in account_events[1:]]
        if first.kind is EventKind.SPIKE and d + 15 < followers.shape[1] and all(x > d + 14 for x in later):
            # Then part of the contest's followers leave again: 20-60% of them, mostly within 2 weeks.
            lost = followers[i, d + 1] - followers[i, d + 15]
            assert 0.2 * 0.8 * first.magnitude - 1 <= lost <= 0.6 * first.magnitude + 1, first
        checked[first.kind] += 1
    assert checked[EventKind.SPIKE] >= 20 and checked[EventKind.PURGE] >= 20, checked


def probe(
    sim: Simulator, wanted: Iterable[tuple[datetime, str]]
) -> dict[tuple[datetime, str], tuple[int, int] | None]:
    """(status, followers) of accounts at times, None where not visible; observed in time order, so
    that the simulation never replays."""
    by_time: dict[datetime, list[str]] = defaultdict(list)
    for t, account_id in wanted:
        by_time[t].append(account_id)
    out: dict[tuple[datetime, str], tuple[int, int] | None] = {}
    for t in sorted(by_time):
        batch = sim.observe(t)
        row = {aid: j for j, aid in enumerate(batch.account_ids())}
        for account_id in by_time[t]:
            j = row.get(account_id)
            out[t, account_id] = None if j is None else (int(batch.status[j]), int(batch.followers[j]))
    return out


def test_status_events_show_at_their_instant(
    still_world: tuple[Simulator, dict[str, Matrix], list[InjectedEvent]],
) -> None:
    sim, _, events = still_world
    gone_for = timedelta(days=sim.params.gone_report_days)
    per_account = Counter(e.account_id for e in events)
    alone = [e for e in events if per_account[e.account_id] == 1]  # nothing else moves its followers
    deleted = [e for e in alone if e.kind is EventKind.DELETED][:8]
    suspended = [e for e in alone if e.kind is EventKind.SUSPENDED][:8]
    new = [e for e in events if e.kind is EventKind.NEW][:8]
    assert deleted and suspended and new
    wanted = []
    for e in deleted:
        wanted += [(e.start - SECOND, e.account_id), (e.start, e.account_id)]
        wanted += [(e.start + gone_for - SECOND, e.account_id), (e.start + gone_for, e.account_id)]
    for e in suspended:
        assert e.end is not None and e.end > e.start
        wanted += [(e.start - SECOND, e.account_id), (e.start, e.account_id)]
        wanted += [(e.end - SECOND, e.account_id), (e.end, e.account_id)]
    for e in new:
        wanted += [(e.start - SECOND, e.account_id), (e.start, e.account_id)]
    seen = probe(sim, wanted)
    for e in deleted:
        assert seen[e.start - SECOND, e.account_id] == (0, -e.magnitude)
        assert seen[e.start, e.account_id] == (1, 0)
        assert seen[e.start + gone_for - SECOND, e.account_id] == (1, 0)
        assert seen[e.start + gone_for, e.account_id] is None
    for e in suspended:
        assert e.end is not None
        assert seen[e.start - SECOND, e.account_id] == (0, -e.magnitude)
        assert seen[e.start, e.account_id] == (2, 0)
        assert seen[e.end - SECOND, e.account_id] == (2, 0)
        assert seen[e.end, e.account_id] == (0, -e.magnitude)
    for e in new:
        assert seen[e.start - SECOND, e.account_id] is None
        assert seen[e.start, e.account_id] == (0, e.magnitude)


def test_dormant_accounts_stop_posting_at_their_start(
    still_world: tuple[Simulator, dict[str, Matrix], list[InjectedEvent]],
) -> None:
    sim, cols, events = still_world
    where = index_of(sim)
    last = cols["status"].shape[1] - 1
    dormant = [e for e in events if e.kind is EventKind.DORMANT]
    emptied = 0
    for e in dormant:
        i, d = where[e.account_id], day_of(e.start)
        assert e.end is not None and day_of(e.end) > d + 30  # long enough to empty posts_30d
        assert cols["status"][i, d] == 0 and cols["posts_30d"][i, d] == -e.magnitude > 0
        span = slice(d, min(day_of(e.end), last) + 1)
        active = cols["status"][i, span] == 0
        posts_total = cols["posts_total"][i, span][active]
        assert (posts_total == posts_total[0]).all(), e  # not one post while dormant
        if d + 30 <= last and cols["status"][i, d + 30] == 0:
            assert cols["posts_30d"][i, d + 30] == 0
            emptied += 1
    assert emptied >= 5


# --- Pacing.


class FakeClock:
    """A monotonic clock that only moves when slept on or told to."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_live_advances_simulated_time_speed_times_faster(subset: list[Entity]) -> None:
    sim = Simulator(subset, seed=1)
    clock = FakeClock()
    wall: list[float] = []
    stream = sim.live(speed=3600.0, step=timedelta(hours=2), clock=clock, sleep=clock.sleep)
    for _ in stream:
        wall.append(clock.now)
        clock.now += 0.5  # the consumer's own work counts against the schedule, not on top of it
        if len(wall) == 5:
            break
    assert [b - wall[0] for b in wall] == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0])
    assert clock.sleeps == pytest.approx([1.5] * 4)


def test_live_never_runs_ahead_of_not_after(subset: list[Entity]) -> None:
    sim = Simulator(subset, seed=1)
    clock = FakeClock()
    start_wall = clock.now

    def now() -> datetime:  # simulated "now": origin + 3 h, then the wall clock at speed 1
        return DEFAULT_ORIGIN + timedelta(hours=3) + timedelta(seconds=clock.now - start_wall)

    seen = []
    for batch in sim.live(
        speed=36_000.0, step=timedelta(hours=1), clock=clock, sleep=clock.sleep, not_after=now
    ):
        assert batch.t <= now()
        seen.append((batch.t, clock.now - start_wall))
        if len(seen) == 6:
            break
    # Hours 0-3 come at speed (0.1 s apart), then one an hour, in step with the wall clock.
    assert [w for _, w in seen] == pytest.approx([0.0, 0.1, 0.2, 0.3, 3600.0, 7200.0])


def test_run_is_half_open_and_checks_its_step(subset: list[Entity]) -> None:
    sim = Simulator(subset, seed=1)
    assert [b.t for b in sim.run(DEFAULT_ORIGIN, DEFAULT_ORIGIN + 3 * DAY)] == days(3)
    with pytest.raises(ValueError, match="step"):
        next(sim.run(DEFAULT_ORIGIN, DEFAULT_ORIGIN + DAY, timedelta(0)))
    with pytest.raises(ValueError, match="speed"):
        next(sim.live(speed=0))
