"""What the poller service reads when: cadences, back-off, rate budgets and the plan. Pure: no I/O,
no clock; every function takes the time it works at (seconds, on any one clock), so the whole policy is
unit-tested with a simulated day.

- :func:`cadence_for`: how often an account is read, from its audience and how fast it moves;
- :func:`retry_delay`: how long a failed account waits, doubling with failures in a row, bounded;
- :class:`Schedule`: every account's next due time, the most overdue first; new accounts are due at once;
- :class:`WindowPacer`: when the next request to one rate-limit key may go, so that no sliding window
  of a platform's documented budget ever holds more requests than the budget, and requests are spread
  evenly over the window rather than spent in a burst;
- :func:`chunk_size`: how many due accounts one poll takes, so a poll holds a bounded share of the budget;
- :func:`plan_platform`: how often a platform can be read with its budget (``barometre poll --plan``).
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class RateBudget:
    """A documented rate limit: at most ``requests`` requests in any ``window_s`` seconds, per key."""

    requests: int
    window_s: float

    def __post_init__(self) -> None:
        if self.requests < 1 or not self.window_s > 0:
            raise ValueError(f"a rate budget needs requests >= 1 and a window > 0, got {self}")

    @property
    def per_second(self) -> float:
        return self.requests / self.window_s

    def share(self, fraction: float) -> RateBudget:
        """This budget cut to ``fraction`` of its requests (at least one): headroom for others on the key."""
        if not 0 < fraction <= 1:
            raise ValueError(f"a budget share is in (0, 1], got {fraction}")
        return RateBudget(max(1, math.floor(self.requests * fraction)), self.window_s)


@dataclass(frozen=True, slots=True)
class CadencePolicy:
    """How often accounts are read (seconds), and what makes an account large, small or moving."""

    fast_s: float = 3_600.0  # large or moving accounts
    normal_s: float = 6 * 3_600.0  # the rest, and new accounts until their first reading
    slow_s: float = DAY_S  # small, quiet accounts, and accounts the platform reports gone
    large_followers: int = 10_000
    small_followers: int = 1_000
    moving_share_per_day: float = 0.01  # followers changing by 1% a day or more make an account "moving"
    backoff_s: float = 900.0  # the first retry after a failure; doubles with each failure in a row
    backoff_max_s: float = DAY_S
    jitter_share: float = 0.1  # next due times are spread over the last 10% of the cadence

    def __post_init__(self) -> None:
        if not 0 < self.fast_s <= self.normal_s <= self.slow_s:
            raise ValueError("cadences must satisfy 0 < fast <= normal <= slow")
        if not 0 <= self.small_followers <= self.large_followers:
            raise ValueError("small_followers must not exceed large_followers")
        if self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError("back-off must satisfy 0 < backoff <= backoff_max")
        if not 0 <= self.jitter_share < 1:
            raise ValueError("jitter_share is in [0, 1)")


def cadence_for(
    policy: CadencePolicy,
    followers: int | None,
    previous_followers: int | None = None,
    elapsed_s: float | None = None,
    *,
    gone: bool = False,
) -> float:
    """The interval between two readings of an account, from its last reading.

    ``followers`` is None for an account never read (normal cadence); ``previous_followers`` and
    ``elapsed_s`` (the time between the two readings) tell whether it moves. An account the platform
    reports deleted or suspended (``gone``) is read daily: it may come back, it will not move.
    """
    if gone:
        return policy.slow_s
    if followers is None:
        return policy.normal_s
    if followers >= policy.large_followers:
        return policy.fast_s
    if previous_followers is not None and elapsed_s is not None and elapsed_s > 0:
        change = abs(followers - previous_followers) / max(previous_followers, 1)
        if change * DAY_S / elapsed_s >= policy.moving_share_per_day:
            return policy.fast_s
    if followers < policy.small_followers:
        return policy.slow_s
    return policy.normal_s


def retry_delay(policy: CadencePolicy, failures: int, cadence_s: float) -> float:
    """How long an account that failed ``failures`` times in a row waits: ``backoff_s`` doubling,
    never more than ``backoff_max_s``, nor more than its cadence once it has failed a few times over
    (a daily account keeps its daily reading)."""
    if failures < 1:
        raise ValueError("retry_delay is for an account that failed at least once")
    delay = policy.backoff_s * 2.0 ** min(failures - 1, 30)
    return min(delay, policy.backoff_max_s, max(cadence_s, policy.backoff_s))


def jittered(policy: CadencePolicy, account_id: str, cadence_s: float) -> float:
    """``cadence_s`` shortened by a fixed share of up to ``jitter_share`` for this account.

    Accounts read together (all new at start-up) would otherwise all be due again at the same instant,
    a burst the budget then spreads out late; a share drawn from the id is stable across restarts.
    """
    unit = (zlib.crc32(account_id.encode()) % 10_000) / 10_000
    return cadence_s * (1 - policy.jitter_share * unit)


# --- The schedule.


@dataclass(slots=True)
class Entry:
    """What the schedule knows of one account."""

    account_id: str
    platform: str
    next_due: float
    cadence_s: float
    failures: int = 0
    followers: int | None = None  # at the last reading, to tell whether the account moves
    read_at: float | None = None  # when it was last read
    generation: int = 0  # bumped at each reschedule: heap items of older generations are stale
    in_flight: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """An account's schedule as persisted (poll_state), to resume after a restart."""

    next_due: float
    cadence_s: float
    failures: int = 0
    last_success: float | None = None


@dataclass
class Schedule:
    """Every account's next due time, per platform, most overdue first (a heap with lazy deletion)."""

    policy: CadencePolicy
    entries: dict[str, Entry] = field(default_factory=dict)
    _heaps: dict[str, list[tuple[float, int, str]]] = field(default_factory=dict)

    def sync(
        self, accounts: Iterable[tuple[str, str]], now: float, stored: Mapping[str, Stored] | None = None
    ) -> tuple[int, int]:
        """Make the schedule hold exactly ``accounts`` ((account_id, platform) pairs).

        A new account resumes from ``stored`` when it is there, else is due at ``now``; an account no
        longer given (rejected, gone, deleted from the registry) is dropped. Returns (added, removed).
        """
        stored = stored or {}
        wanted = dict(accounts)
        removed = [account_id for account_id in self.entries if account_id not in wanted]
        for account_id in removed:
            del self.entries[account_id]  # its heap items are skipped as stale
        added = 0
        for account_id, platform in wanted.items():
            entry = self.entries.get(account_id)
            if entry is not None and entry.platform == platform:
                continue
            saved = stored.get(account_id)
            if saved is None:
                entry = Entry(account_id, platform, now, self.policy.normal_s)
            else:
                entry = Entry(
                    account_id,
                    platform,
                    saved.next_due,
                    saved.cadence_s,
                    saved.failures,
                    read_at=saved.last_success,
                )
            self.entries[account_id] = entry
            self._push(entry)
            added += 1
        return added, len(removed)

    def _push(self, entry: Entry) -> None:
        entry.generation += 1
        heapq.heappush(
            self._heaps.setdefault(entry.platform, []), (entry.next_due, entry.generation, entry.account_id)
        )

    def _live(self, item: tuple[float, int, str]) -> Entry | None:
        entry = self.entries.get(item[2])
        if entry is None or entry.generation != item[1] or entry.in_flight:
            return None
        return entry

    def _top(self, platform: str) -> Entry | None:
        heap = self._heaps.get(platform, [])
        while heap:
            entry = self._live(heap[0])
            if entry is not None:
                return entry
            heapq.heappop(heap)
        return None

    def platforms(self) -> list[str]:
        return sorted({entry.platform for entry in self.entries.values()})

    def next_due(self, platform: str) -> float | None:
        """When the next account of ``platform`` is due (None when it has none waiting)."""
        top = self._top(platform)
        return None if top is None else top.next_due

    def due_count(self, platform: str, now: float) -> int:
        """How many accounts of ``platform`` are due at ``now`` (not in flight)."""
        return self.counts(now).get(platform, (0, 0))[1]

    def counts(self, now: float) -> dict[str, tuple[int, int]]:
        """Per platform: (accounts scheduled, accounts due at ``now`` and not in flight), in one pass."""
        counts: dict[str, list[int]] = {}
        for e in self.entries.values():
            count = counts.setdefault(e.platform, [0, 0])
            count[0] += 1
            if not e.in_flight and e.next_due <= now:
                count[1] += 1
        return {platform: (total, due) for platform, (total, due) in counts.items()}

    def take_due(self, platform: str, now: float, limit: int) -> list[Entry]:
        """Up to ``limit`` due accounts of ``platform``, most overdue first, marked in flight until
        :meth:`succeeded`, :meth:`failed` or :meth:`release` puts them back."""
        taken: list[Entry] = []
        heap = self._heaps.get(platform, [])
        while heap and len(taken) < limit:
            entry = self._live(heap[0])
            if entry is None:
                heapq.heappop(heap)
                continue
            if entry.next_due > now:
                break
            heapq.heappop(heap)
            entry.in_flight = True
            taken.append(entry)
        return taken

    def _reschedule(self, entry: Entry, next_due: float) -> None:
        entry.in_flight = False
        entry.next_due = next_due
        if self.entries.get(entry.account_id) is entry:
            self._push(entry)

    def succeeded(self, entry: Entry, at: float, followers: int, *, gone: bool = False) -> float:
        """The account was read at ``at`` with ``followers``: next due after its (new) cadence."""
        elapsed = None if entry.read_at is None else at - entry.read_at
        entry.cadence_s = cadence_for(self.policy, followers, entry.followers, elapsed, gone=gone)
        entry.followers, entry.read_at, entry.failures = followers, at, 0
        self._reschedule(entry, at + jittered(self.policy, entry.account_id, entry.cadence_s))
        return entry.next_due

    def failed(self, entry: Entry, at: float) -> float:
        """The account could not be read at ``at``: due again after a bounded back-off."""
        entry.failures += 1
        self._reschedule(entry, at + retry_delay(self.policy, entry.failures, entry.cadence_s))
        return entry.next_due

    def drop(self, account_id: str) -> None:
        """Forget an account (the platform confirmed it gone): never due again until registered again."""
        self.entries.pop(account_id, None)

    def release(self, entry: Entry, due: float) -> None:
        """Put an account back, due at ``due``, without counting a failure (nothing was asked of it)."""
        self._reschedule(entry, due)

    def lag(self, platform: str, now: float) -> float:
        """How far behind schedule ``platform`` is: the age of its most overdue waiting account."""
        top = self._top(platform)
        return 0.0 if top is None else max(0.0, now - top.next_due)


# --- Pacing requests within a budget.


class WindowPacer:
    """When the next request to one key may be sent within ``budget``.

    Two rules, both needed: requests are at least ``window / requests`` apart (spread evenly, never a
    burst), and no sliding window of ``window_s`` ever holds more than ``requests`` of them (which the
    spacing alone does not promise for a closed window with a request at each end).
    """

    def __init__(self, budget: RateBudget) -> None:
        self.budget = budget
        self.spacing = budget.window_s / budget.requests
        self._sent: deque[float] = deque(maxlen=budget.requests)

    def next_at(self, now: float) -> float:
        """The earliest instant at or after ``now`` when a request may go."""
        at = now
        if self._sent:
            at = max(at, self._sent[-1] + self.spacing)
        if len(self._sent) == self.budget.requests:
            # The oldest of the last `requests` requests must have left the window (t - window, t].
            at = max(at, math.nextafter(self._sent[0] + self.budget.window_s, math.inf))
        return at

    def record(self, at: float) -> None:
        """A request was sent at ``at`` (never before :meth:`next_at` said)."""
        self._sent.append(at)


def chunk_size(budget: RateBudget, batch_size: int, requests_per_account: float, seconds: float) -> int:
    """How many accounts one poll takes: what ``seconds`` of the budget can read, in whole batches, at
    least one batch; so a poll never holds a platform for long and newly due accounts get in."""
    if batch_size < 1 or requests_per_account <= 0 or seconds <= 0:
        raise ValueError("chunk_size needs batch_size >= 1, requests_per_account > 0 and seconds > 0")
    accounts = budget.per_second * seconds / requests_per_account
    return max(batch_size, math.floor(accounts / batch_size) * batch_size)


# --- The plan.


@dataclass(frozen=True, slots=True)
class PlatformPlan:
    """How often one platform can be read with its budget (``barometre poll --plan``)."""

    platform: str
    accounts: int
    keys: int  # rate-limit keys the accounts spread over (Mastodon servers; 1 elsewhere)
    batch_size: int
    requests_per_account: float
    requests_per_round: int  # reading every account once
    budget: RateBudget  # per key, after the share kept as headroom
    wanted_per_day: float  # requests a day the accounts' cadences ask for
    shortest_cadence_s: float  # the fastest every account can be read, on the busiest key
    late: int  # accounts whose cadence the budget cannot keep

    @property
    def capacity_per_day(self) -> float:
        return self.budget.per_second * DAY_S * self.keys


def plan_platform(
    platform: str,
    accounts: Sequence[tuple[str, float]],
    *,
    batch_size: int,
    budget: RateBudget,
    requests_per_account: float | None = None,
) -> PlatformPlan:
    """Plan one platform from its accounts ((rate-limit key, cadence in seconds) pairs).

    ``requests_per_account`` defaults to one request per batch. On each key, accounts are given the
    budget most frequent first (they are the ones that move); those the budget cannot cover at their
    cadence are ``late``: the scheduler then reads them later than their cadence, most overdue first.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    rpa = requests_per_account if requests_per_account is not None else 1 / batch_size
    by_key: dict[str, list[float]] = {}
    for key, cadence in accounts:
        if cadence <= 0:
            raise ValueError(f"a cadence must be positive, got {cadence}")
        by_key.setdefault(key, []).append(cadence)
    per_day = budget.per_second * DAY_S
    wanted = 0.0
    late = 0
    shortest = 0.0
    for cadences in by_key.values():
        cadences.sort()
        used = 0.0
        for cadence in cadences:
            need = rpa * DAY_S / cadence
            wanted += need
            if used + need > per_day * (1 + 1e-9):
                late += 1
            else:
                used += need
        shortest = max(shortest, math.ceil(len(cadences) * rpa) / budget.per_second)
    return PlatformPlan(
        platform=platform,
        accounts=len(accounts),
        keys=max(1, len(by_key)),
        batch_size=batch_size,
        requests_per_account=rpa,
        requests_per_round=sum(math.ceil(len(c) * rpa) for c in by_key.values()),
        budget=budget,
        wanted_per_day=wanted,
        shortest_cadence_s=shortest,
        late=late,
    )


def describe_seconds(seconds: float) -> str:
    """A duration for people: ``45s``, ``12m``, ``3.5h``, ``2.1d``."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3_600:
        return f"{seconds / 60:.0f}m"
    if seconds < DAY_S:
        return f"{seconds / 3_600:.1f}h"
    return f"{seconds / DAY_S:.1f}d"


def format_plan(plans: Sequence[PlatformPlan]) -> str:
    """The plan as a table, one platform a line, then what it means."""
    header = (
        f"{'platform':<10} {'accounts':>9} {'keys':>5} {'batch':>5} {'req/round':>9} "
        f"{'budget':>16} {'req/day wanted':>14} {'req/day budget':>14} {'shortest':>9} {'late':>7}"
    )
    lines = [header]
    for p in plans:
        budget = f"{p.budget.requests}/{describe_seconds(p.budget.window_s)}"
        if p.keys > 1:
            budget += "/key"
        lines.append(
            f"{p.platform:<10} {p.accounts:>9,} {p.keys:>5,} {p.batch_size:>5} {p.requests_per_round:>9,} "
            f"{budget:>16} {p.wanted_per_day:>14,.0f} {p.capacity_per_day:>14,.0f} "
            f"{describe_seconds(p.shortest_cadence_s):>9} {p.late:>7,}"
        )
    lines.append(
        "shortest: the fastest every account can be read (one full round on the busiest key); "
        "late: accounts whose cadence the budget cannot keep."
    )
    return "\n".join(lines)
