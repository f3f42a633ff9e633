"""Noise control: from detections to the alerts people are shown, as Alertmanager does it.

A pure state machine over ``(now, candidates)``: :class:`NoiseControl` receives the detections of
accounts (:class:`Candidate`), and decides for each an :class:`Outcome` — published (``emit``), or not
and why: the same alert again (``duplicate``), part of an alert already open for that account and type
(``ongoing``), too soon after the last one (``cooldown``), muted by a :class:`Silence` (``silenced``),
or part of a platform-wide :class:`Incident` (``inhibited``). It has no clock and no I/O: the caller
passes the current time and stores what it returns.

The rules, with their reasons, are in docs/ALERTS.md ("Noise control"). In short:

- **one open alert per (account, type)**: an alert stays open while detections of its type for that
  account keep coming at most ``resolve_after_ms`` apart (event time), or report a change that began
  while it was open (after a gap in the data); they are folded into it. It
  closes (internally: the contract's status stays ``open`` until someone acknowledges it) after that
  much quiet; a new alert then needs more than ``cooldown_ms`` since the previous one;
- **grouping**: detections of a grouped type (drops, spikes, gone, new) on one platform are held for
  ``group_wait_ms`` (processing time); when at least ``max(group_min_accounts, group_min_share x
  active accounts)`` accounts of a platform have one within ``group_window_ms`` (event time), they
  become one :class:`Incident`, which inhibits every per-account alert of that platform and type in
  its time span (those already sent before it formed are listed as its members);
- **silences**: by account, entity, platform and/or type, for a period; matched at ``now``.

Event time (``observed_at``) drives episodes and groups, so that re-processing gives the same
decisions; processing time (``now``) drives only the holding of grouped detections and silences, which
are about what people are shown now.

The Alert v1 contract has a required ``account_id`` and no room for a group, so an incident is not an
``Alert``: it is its own record (published beside alerts, see docs/ALERTS.md), and the per-account
alerts it inhibits are not published but kept with ``inhibited`` and the incident id.
"""

from __future__ import annotations

import heapq
import math
import uuid
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Final

from services.common.events import Alert, derive_alert_id, format_timestamp
from services.common.names import ALERT_ID_NAMESPACE, AlertSeverity, AlertStatus, AlertType, Platform
from services.scoring.alerts.detection import HOUR_MS, Detection
from services.scoring.maths.points import DAY_MS, from_ms

MINUTE_MS: Final = 60_000
_PLATFORMS: Final = tuple(p.value for p in Platform)


@dataclass(frozen=True, slots=True)
class NoiseParams:
    """The knobs of noise control; the defaults are explained in docs/ALERTS.md."""

    cooldown_ms: int = DAY_MS  # no new alert of a type for an account within this of the last one
    resolve_after_ms: int = 36 * HOUR_MS  # an open alert closes after this long without a detection
    group_types: frozenset[AlertType] = frozenset(
        {AlertType.AUDIENCE_DROP, AlertType.AUDIENCE_SPIKE, AlertType.ACCOUNT_GONE, AlertType.ACCOUNT_NEW}
    )
    group_window_ms: int = 6 * HOUR_MS  # accounts of one platform within this (event time) are counted
    group_wait_ms: int = MINUTE_MS  # grouped detections are held this long (processing time)
    group_min_accounts: int = 10  # an incident needs at least this many accounts...
    group_min_share: float = 0.01  # ... and this share of the platform's active accounts
    critical_share: float = 0.10  # an incident reaching this share of the platform is critical
    # Episodes and incidents are forgotten this long after the latest observed_at seen (event time).
    # Decisions need only the last few days (cooldown, resolve_after), but "latest seen" runs ahead of an
    # account's own time when the worker catches up on a backlog: its partitions are consumed at
    # different paces, and an episode forgotten too early lets the rest of a change through as a second
    # alert. 40 days tolerates partitions a month apart (measured with bench/alerts_eval.py --pipeline).
    retention_ms: int = 40 * DAY_MS


DEFAULT_NOISE: Final = NoiseParams()


class Verdict(StrEnum):
    """What becomes of a candidate."""

    EMIT = "emit"  # publish it as an Alert
    PENDING = "pending"  # held for group_wait; a later step gives its final verdict
    DUPLICATE = "duplicate"  # the alert already published (same type, account and observed_at)
    ONGOING = "ongoing"  # folded into the open alert of that account and type
    COOLDOWN = "cooldown"  # too soon after the last alert of that account and type
    SILENCED = "silenced"  # a silence matches
    INHIBITED = "inhibited"  # part of a platform-wide incident


@dataclass(frozen=True, slots=True)
class Candidate:
    """A detection about one account: what noise control decides on. ``account_id`` is canonical
    (``<platform>:<id>``), ``entity_id`` the owner when known (silences by entity need it)."""

    account_id: str
    entity_id: str | None
    detection: Detection

    @property
    def platform(self) -> str:
        """The platform, from the account id's prefix."""
        return self.account_id.partition(":")[0]

    @property
    def type(self) -> AlertType:
        """The detection's alert type."""
        return self.detection.type

    @property
    def observed_at(self) -> int:
        """The detection's instant (epoch ms)."""
        return self.detection.observed_at

    @property
    def alert_id(self) -> str:
        """The contract's deterministic alert id (same detection, same id)."""
        return derive_alert_id(self.detection.type, self.account_id, from_ms(self.detection.observed_at))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one candidate; ``by`` names what decided it (the open alert's id for
    duplicate/ongoing/cooldown, the silence's id, the incident's id)."""

    candidate: Candidate
    verdict: Verdict
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute the alerts matching every given matcher during ``[starts_at, ends_at)`` (epoch ms).

    At least one matcher is required (a silence of everything is a switch, not a silence). An incident
    is muted by a silence without account or entity matcher whose platform and type match it.
    """

    silence_id: str
    starts_at: int
    ends_at: int
    account_id: str | None = None
    entity_id: str | None = None
    platform: str | None = None
    type: AlertType | None = None
    created_by: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if self.account_id is None and self.entity_id is None and self.platform is None and self.type is None:
            raise ValueError("a silence needs at least one matcher: account_id, entity_id, platform or type")
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")
        if self.platform is not None and self.platform not in _PLATFORMS:
            raise ValueError(f"unknown platform {self.platform!r}; allowed: {', '.join(_PLATFORMS)}")
        if (
            self.account_id is not None
            and self.platform is not None
            and self.account_id.partition(":")[0] != self.platform
        ):
            raise ValueError(f"account {self.account_id!r} is not on platform {self.platform!r}")

    def active(self, at: int) -> bool:
        """Whether the silence is in force at ``at``."""
        return self.starts_at <= at < self.ends_at

    def matches(self, candidate: Candidate, at: int) -> bool:
        """Whether it mutes ``candidate`` at ``at``."""
        return (
            self.active(at)
            and (self.account_id is None or self.account_id == candidate.account_id)
            and (self.entity_id is None or self.entity_id == candidate.entity_id)
            and (self.platform is None or self.platform == candidate.platform)
            and (self.type is None or self.type is candidate.type)
        )

    def matches_incident(self, incident: Incident, at: int) -> bool:
        """Whether it mutes ``incident`` at ``at`` (platform and type matchers only)."""
        return (
            self.active(at)
            and self.account_id is None
            and self.entity_id is None
            and (self.platform is None or self.platform == incident.platform)
            and (self.type is None or self.type is incident.type)
        )


def matching_silence(silences: Iterable[Silence], candidate: Candidate, at: int) -> Silence | None:
    """The first silence that mutes ``candidate`` at ``at``, if any."""
    for silence in silences:
        if silence.matches(candidate, at):
            return silence
    return None


@dataclass(frozen=True, slots=True)
class Incident:
    """Many accounts of one platform with the same kind of alert at once: one story, not hundreds.

    ``first_observed_at``/``last_observed_at`` span its members' detections (event time);
    ``detected_at`` is when it formed (processing time). ``members`` are the account ids, in the order
    they joined; ``emitted_before`` those whose own alert was published before the incident formed.
    ``total_change`` sums the members' followers beyond expected (spikes and drops). ``resolved`` once
    no member joined for ``group_window_ms`` (processing time). ``incident_id`` is a UUIDv5 of type,
    platform and first instant, so that re-processing the same detections gives the same id.
    """

    incident_id: str
    platform: str
    type: AlertType
    first_observed_at: int
    last_observed_at: int
    detected_at: int
    updated_at: int
    members: tuple[str, ...]
    emitted_before: tuple[str, ...]
    active_accounts: int | None
    threshold: int
    total_change: float
    severity: AlertSeverity
    resolved: bool = False
    silenced_by: str | None = None

    @property
    def share(self) -> float | None:
        """Members over the platform's active accounts, when those are known."""
        return len(self.members) / self.active_accounts if self.active_accounts else None

    def to_dict(self) -> dict[str, object]:
        """The incident as a JSON object (timestamps in RFC 3339), for the topic and the API."""
        return {
            "incident_id": self.incident_id,
            "type": self.type.value,
            "platform": self.platform,
            "first_observed_at": format_timestamp(from_ms(self.first_observed_at)),
            "last_observed_at": format_timestamp(from_ms(self.last_observed_at)),
            "detected_at": format_timestamp(from_ms(self.detected_at)),
            "updated_at": format_timestamp(from_ms(self.updated_at)),
            "accounts": len(self.members),
            "members": list(self.members),
            "emitted_before": list(self.emitted_before),
            "active_accounts": self.active_accounts,
            "share": self.share,
            "threshold": self.threshold,
            "total_change": self.total_change,
            "severity": self.severity.value,
            "status": "resolved" if self.resolved else "open",
            "silenced_by": self.silenced_by,
        }

    def covers(self, observed_at: int, window_ms: int) -> bool:
        """Whether a detection at ``observed_at`` falls within this incident's span (plus the window)."""
        return self.first_observed_at - window_ms <= observed_at <= self.last_observed_at + window_ms


def incident_id(alert_type: AlertType, platform: str, first_observed_at: int) -> str:
    """The deterministic id of an incident (its namespace is the alerts', with a prefix no type has)."""
    name = f"incident|{alert_type.value}|{platform}|{format_timestamp(from_ms(first_observed_at))}"
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class Step:
    """What one call decided: an outcome per candidate decided (or held) and the incidents opened or
    changed (upsert them by ``incident_id``)."""

    outcomes: list[Outcome]
    incidents: list[Incident]

    @property
    def alerts(self) -> list[Candidate]:
        """The candidates to publish as alerts."""
        return [o.candidate for o in self.outcomes if o.verdict is Verdict.EMIT]


@dataclass(slots=True)
class _Episode:
    """The open (or last) alert of one account and type."""

    alert_id: str
    alert_at: int  # observed_at of the published alert
    first_seen: int  # span of the detections folded into it (event time)
    last_seen: int

    def __reduce__(self) -> tuple[type[_Episode], tuple[str, int, int, int]]:
        # Stored as its fields (not a dict of slot names): a purge leaves one per account of the
        # platform, and as dicts they were large and slow to pickle.
        return _Episode, (self.alert_id, self.alert_at, self.first_seen, self.last_seen)


@dataclass(slots=True)
class _LiveIncident:
    """An incident as noise control keeps it: its members in a list (join order) and a set
    (membership), so that a candidate joining one of 100,000 members costs O(1); ``value`` holds the
    rest (its ``members`` left empty). The frozen :class:`Incident` the steps return is built from it
    once per step that changed it, never per candidate."""

    value: Incident  # members: () (they are in ``members``)
    members: list[str]
    member_set: set[str]

    @property
    def incident_id(self) -> str:
        """The incident's id."""
        return self.value.incident_id

    def join(self, candidate: Candidate, now: int, critical_share: float) -> None:
        """Add ``candidate``'s account (not yet a member)."""
        self.members.append(candidate.account_id)
        self.member_set.add(candidate.account_id)
        value = self.value
        severity = value.severity
        if value.active_accounts and len(self.members) / value.active_accounts >= critical_share:
            severity = AlertSeverity.CRITICAL
        self.value = replace(
            value,
            first_observed_at=min(value.first_observed_at, candidate.observed_at),
            last_observed_at=max(value.last_observed_at, candidate.observed_at),
            updated_at=now,
            total_change=value.total_change + _excess(candidate.detection),
            severity=severity,
            resolved=False,
        )

    def snapshot(self) -> Incident:
        """The frozen incident (O(members))."""
        return replace(self.value, members=tuple(self.members))

    # The stored state (codec.dump_control) leaves out what the rest gives back.
    def __getstate__(self) -> tuple[Incident, list[str]]:
        return self.value, self.members

    def __setstate__(self, state: tuple[Incident, list[str]]) -> None:
        self.value, self.members = state
        self.member_set = set(self.members)


@dataclass(slots=True)
class _Group:
    """Recent grouped detections of one platform and type, and its incidents.

    ``recent`` holds the detections not (yet) in an incident, ``timeline`` the same as ``(observed_at,
    account)`` in order, so that counting those within the window of a new one is two bisections.
    """

    recent: dict[str, tuple[int, Candidate]] = field(default_factory=dict)  # account -> latest
    timeline: list[tuple[int, str]] = field(default_factory=list)  # recent's (observed_at, account), sorted
    emitted: set[str] = field(default_factory=set)  # accounts whose recent detection was published
    incidents: list[_LiveIncident] = field(default_factory=list)

    def remember(self, account: str, t: int, candidate: Candidate) -> None:
        """Make ``candidate`` (at ``t``) the account's latest recent detection."""
        previous = self.recent.get(account)
        if previous is not None:
            i = bisect_left(self.timeline, (previous[0], account))
            del self.timeline[i]
        self.recent[account] = (t, candidate)
        insort(self.timeline, (t, account))

    def window(self, lo: int, hi: int) -> tuple[int, int]:
        """The slice of ``timeline`` observed within ``[lo, hi]``."""
        return bisect_left(self.timeline, (lo,)), bisect_left(self.timeline, (hi + 1,))

    def take(self, start: int, stop: int) -> list[tuple[int, Candidate]]:
        """Remove ``timeline[start:stop]`` from the recent detections; their ``(observed_at, candidate)``."""
        taken = [self.recent.pop(account) for _, account in self.timeline[start:stop]]
        del self.timeline[start:stop]
        return taken

    # The stored state (codec.dump_control) leaves out the timeline, which ``recent`` gives back.
    def __getstate__(self) -> tuple[dict[str, tuple[int, Candidate]], set[str], list[_LiveIncident]]:
        return self.recent, self.emitted, self.incidents

    def __setstate__(
        self, state: tuple[dict[str, tuple[int, Candidate]], set[str], list[_LiveIncident]]
    ) -> None:
        self.recent, self.emitted, self.incidents = state
        self.timeline = sorted((t, account) for account, (t, _) in self.recent.items())


class NoiseControl:
    """The state machine of noise control (module docstring). Not thread-safe; one per platform set.

    All accounts of a platform must go through the same instance for grouping to see them: the worker
    runs it where detections are keyed by platform (docs/ALERTS.md, "Running it").

    Every per-candidate operation is O(1) amortised (or a bisection), whatever the size of the
    incident it joins: a purge hits most of a platform's 300,000 accounts at once.
    """

    def __init__(self, params: NoiseParams = DEFAULT_NOISE, silences: Sequence[Silence] = ()) -> None:
        self.params = params  # replaceable: a restored state takes the settings of the worker restoring it
        self._silences: tuple[Silence, ...] = tuple(silences)
        self._active: dict[str, int] = {}
        self._episodes: dict[tuple[str, AlertType], _Episode] = {}
        # (an instant no later than its episode's last detection or alert, key): for forgetting without
        # going through every episode at every flush.
        self._expiries: list[tuple[int, str, AlertType]] = []
        self._groups: dict[tuple[str, AlertType], _Group] = {}
        self._pending: deque[tuple[int, Candidate]] = deque()  # (release time, candidate), held order
        self._pending_sorted = True  # whether the release times are in held order (they are, unless now or
        # group_wait went back): then the due ones are a prefix
        self._watermark = 0  # the latest observed_at seen (event time), for forgetting

    # --- Inputs besides detections.

    def set_silences(self, silences: Sequence[Silence]) -> None:
        """Replace the silences (the API stores them; the worker refreshes them)."""
        self._silences = tuple(silences)

    def set_active_accounts(self, counts: Mapping[str, int]) -> None:
        """The number of active accounts of each platform (the denominator of ``group_min_share``)."""
        self._active.update(counts)

    @property
    def pending(self) -> int:
        """How many grouped detections are held."""
        return len(self._pending)

    # The stored state (codec.dump_control) leaves out the queue of expiries, which the episodes give
    # back (with the incidents' member sets and the groups' timelines, it made the state 1.7x larger).
    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["_expiries"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._expiries = [(max(e.last_seen, e.alert_at), *key) for key, e in self._episodes.items()]
        heapq.heapify(self._expiries)

    # --- The steps.

    def process(self, now: int, candidates: Iterable[Candidate]) -> Step:
        """Decide on ``candidates`` at ``now`` (epoch ms, processing time), then release what is due."""
        outcomes: list[Outcome] = []
        changed: dict[str, _LiveIncident] = {}
        params = self.params
        for candidate in candidates:
            self._watermark = max(self._watermark, candidate.observed_at)
            key = (candidate.account_id, candidate.type)
            episode = self._episodes.get(key)
            if episode is not None and episode.alert_at == candidate.observed_at:
                # The same alert id again: at-least-once delivery or a periodic check, never news.
                outcomes.append(Outcome(candidate, Verdict.DUPLICATE, episode.alert_id))
                continue
            if candidate.type in params.group_types:
                self._group(now, candidate, changed)
                self._hold(now + params.group_wait_ms, candidate)
                outcomes.append(Outcome(candidate, Verdict.PENDING))
            else:
                outcomes.append(self._decide(now, candidate))
        outcomes += self._flush(now, changed)
        return Step(outcomes, [incident.snapshot() for incident in changed.values()])

    def flush(self, now: int) -> Step:
        """Release the held detections that are due at ``now``, resolve quiet incidents, forget the old.

        Call it periodically (every few seconds) even without new detections, or held alerts wait.
        """
        changed: dict[str, _LiveIncident] = {}
        outcomes = self._flush(now, changed)
        return Step(outcomes, [incident.snapshot() for incident in changed.values()])

    def _flush(self, now: int, changed: dict[str, _LiveIncident]) -> list[Outcome]:
        params = self.params
        outcomes: list[Outcome] = []
        for candidate in self._due(now):
            group = self._groups.get((candidate.platform, candidate.type))
            incident = None if group is None else _covering(group, candidate, params.group_window_ms)
            if incident is not None:
                outcomes.append(self._inhibited(candidate, incident.incident_id))
                continue
            outcome = self._decide(now, candidate)
            if outcome.verdict is Verdict.EMIT and group is not None:
                group.emitted.add(candidate.account_id)
            outcomes.append(outcome)
        for group in self._groups.values():
            for incident in group.incidents:
                if not incident.value.resolved and now - incident.value.updated_at >= params.group_window_ms:
                    incident.value = replace(incident.value, resolved=True)
                    changed[incident.incident_id] = incident
        self._forget()
        return outcomes

    # --- Holding.

    def _hold(self, release_at: int, candidate: Candidate) -> None:
        if self._pending and release_at < self._pending[-1][0]:
            self._pending_sorted = False
        self._pending.append((release_at, candidate))

    def _due(self, now: int) -> list[Candidate]:
        """Take the held detections due at ``now``, in the order they were held."""
        pending = self._pending
        if self._pending_sorted:
            due = []
            while pending and pending[0][0] <= now:
                due.append(pending.popleft()[1])
            return due
        due = [c for at, c in pending if at <= now]
        if due:
            self._pending = deque((at, c) for at, c in pending if at > now)
            times = [at for at, _ in self._pending]
            self._pending_sorted = all(a <= b for a, b in pairwise(times))
        return due

    # --- Per-account decisions.

    def _decide(self, now: int, candidate: Candidate) -> Outcome:
        silence = matching_silence(self._silences, candidate, now)
        if silence is not None:
            return Outcome(candidate, Verdict.SILENCED, silence.silence_id)
        params = self.params
        key = (candidate.account_id, candidate.type)
        t = candidate.observed_at
        episode = self._episodes.get(key)
        if episode is not None:
            if t == episode.alert_at:
                return Outcome(candidate, Verdict.DUPLICATE, episode.alert_id)
            if self._extend(episode, t, candidate.detection.since):
                return Outcome(candidate, Verdict.ONGOING, episode.alert_id)
            if abs(t - episode.alert_at) <= params.cooldown_ms:
                return Outcome(candidate, Verdict.COOLDOWN, episode.alert_id)
        self._open(key, candidate.alert_id, t)
        return Outcome(candidate, Verdict.EMIT)

    def _open(self, key: tuple[str, AlertType], alert_id: str, t: int) -> None:
        """Make ``alert_id`` (at ``t``) the open alert of ``key``."""
        self._episodes[key] = _Episode(alert_id, t, t, t)
        heapq.heappush(self._expiries, (t, *key))

    def _extend(self, episode: _Episode, t: int, since: int | None) -> bool:
        """Fold a detection at ``t`` into ``episode`` if it is still open then (within resolve_after of
        its detections, before or after them), or if the change it reports began while it was open
        (``since``: the rest of a contest seen after a gap in the data); whether it was."""
        resolve = self.params.resolve_after_ms
        start = t if since is None else min(since, t)
        if not (episode.first_seen - resolve <= t and start <= episode.last_seen + resolve):
            return False
        episode.first_seen = min(episode.first_seen, t)
        episode.last_seen = max(episode.last_seen, t)
        return True

    def _inhibited(self, candidate: Candidate, incident_id: str) -> Outcome:
        """An inhibited detection: its story is the incident's, which becomes the account's open alert
        of that type (a repeat is a duplicate, a continuation is ongoing)."""
        key = (candidate.account_id, candidate.type)
        episode = self._episodes.get(key)
        t = candidate.observed_at
        if episode is None or not self._extend(episode, t, candidate.detection.since):
            self._open(key, incident_id, t)
        return Outcome(candidate, Verdict.INHIBITED, incident_id)

    # --- Grouping.

    def _group(self, now: int, candidate: Candidate, changed: dict[str, _LiveIncident]) -> None:
        """Count ``candidate`` in its platform's group; join or open an incident."""
        params = self.params
        window = params.group_window_ms
        key = (candidate.platform, candidate.type)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        t = candidate.observed_at
        account = candidate.account_id
        for incident in group.incidents:
            if incident.value.covers(t, window):
                if account not in incident.member_set:
                    incident.join(candidate, now, params.critical_share)
                    changed[incident.incident_id] = incident
                return
        group.remember(account, t, candidate)
        # Accounts whose latest detection lies within the window ending at this one (or after it:
        # out-of-order arrivals count too, within the window either side).
        start, stop = group.window(t - window, t + window)
        active = self._active.get(candidate.platform)
        threshold = params.group_min_accounts
        if active:
            threshold = max(threshold, math.ceil(params.group_min_share * active))
        if stop - start < threshold:
            return
        members = group.take(start, stop)  # in (observed_at, account) order
        first, last = members[0][0], members[-1][0]
        accounts = [c.account_id for _, c in members]
        share = len(accounts) / active if active else None
        formed = Incident(
            incident_id=incident_id(candidate.type, candidate.platform, first),
            platform=candidate.platform,
            type=candidate.type,
            first_observed_at=first,
            last_observed_at=last,
            detected_at=now,
            updated_at=now,
            members=(),
            emitted_before=tuple(a for a in accounts if a in group.emitted),
            active_accounts=active,
            threshold=threshold,
            total_change=sum(_excess(c.detection) for _, c in members),
            severity=(
                AlertSeverity.CRITICAL
                if share is not None and share >= params.critical_share
                else AlertSeverity.WARNING
            ),
        )
        silence = next((s for s in self._silences if s.matches_incident(formed, now)), None)
        if silence is not None:
            formed = replace(formed, silenced_by=silence.silence_id)
        live = _LiveIncident(formed, accounts, set(accounts))
        group.incidents.append(live)
        changed[live.incident_id] = live

    def _forget(self) -> None:
        """Drop episodes, recent detections and incidents older than the retention (event time).

        Each episode is looked at when the horizon passes its last instant (a heap), each recent
        detection when it leaves the window (the timeline is sorted): not everything at every flush.
        """
        horizon = self._watermark - self.params.retention_ms
        expiries = self._expiries
        while expiries and expiries[0][0] < horizon:
            _, account, alert_type = heapq.heappop(expiries)
            key = (account, alert_type)
            episode = self._episodes.get(key)
            if episode is None:
                continue
            last = max(episode.last_seen, episode.alert_at)
            if last < horizon:
                del self._episodes[key]
            else:  # extended since it was queued (or the key's episode was replaced): queue it again
                heapq.heappush(expiries, (last, account, alert_type))
        old = self._watermark - 2 * self.params.group_window_ms
        for group in self._groups.values():
            stop = bisect_left(group.timeline, (old,))
            for _, candidate in group.take(0, stop):
                group.emitted.discard(candidate.account_id)
            if any(i.value.last_observed_at < horizon for i in group.incidents):
                group.incidents = [i for i in group.incidents if i.value.last_observed_at >= horizon]


def _covering(group: _Group, candidate: Candidate, window_ms: int) -> _LiveIncident | None:
    for incident in group.incidents:
        if candidate.account_id in incident.member_set and incident.value.covers(
            candidate.observed_at, window_ms
        ):
            return incident
    return None


def _excess(detection: Detection) -> float:
    if detection.value is None or detection.expected is None:
        return 0.0
    return detection.value - detection.expected


def to_alert(candidate: Candidate, detected_at: datetime) -> Alert:
    """The contract's Alert v1 of a published candidate (status ``open``)."""
    detection = candidate.detection
    return Alert(
        alert_id=candidate.alert_id,
        type=detection.type,
        account_id=candidate.account_id,
        entity_id=candidate.entity_id,
        platform=Platform(candidate.platform),
        observed_at=from_ms(detection.observed_at),
        detected_at=detected_at,
        value=detection.value,
        expected=detection.expected,
        score=detection.score,
        severity=detection.severity,
        status=AlertStatus.OPEN,
    )
