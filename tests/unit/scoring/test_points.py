"""Daily points: construction from snapshots, the tie rule, derived event ids."""

from __future__ import annotations

import copy
import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

from services.common.events import AccountSnapshot, derive_event_id
from services.common.names import AccountStatus
from services.scoring.maths import (
    DAY_MS,
    DailyPoint,
    derived_event_id,
    from_ms,
    newer,
    point_from_snapshot,
    to_ms,
)
from tests.unit.scoring.factories import ACCOUNT, ms, point


def test_point_from_snapshot_keeps_the_figures_and_floors_to_the_millisecond() -> None:
    snapshot = AccountSnapshot.model_validate(
        {
            "account_id": "x:Grenoble",
            "platform": "x",
            "observed_at": "2013-01-01T10:00:00.123456+01:00",
            "followers": 1200,
            "posts_30d": 14,
            "replies_30d": 0,
            "status": "suspended",
        }
    )
    p = point_from_snapshot(snapshot)
    assert p.observed_at == ms(2013, 1, 1, 9, 0, 0, 123)
    assert p.day == p.observed_at // DAY_MS
    assert from_ms(p.day * DAY_MS).date().isoformat() == "2013-01-01"
    assert p.event_id == snapshot.event_id
    assert (p.followers, p.status, p.posts_30d, p.interactions_30d, p.replies_30d) == (
        1200,
        AccountStatus.SUSPENDED,
        14,
        None,
        0,
    )
    assert not p.active


def test_newer_is_later_observed_at_then_greater_event_id() -> None:
    t = ms(2013, 1, 1, 9)
    assert newer(point(t + 1, event_id="a"), point(t, event_id="z"))
    assert not newer(point(t, event_id="z"), point(t + 1, event_id="a"))
    assert newer(point(t, event_id="b"), point(t, event_id="a"))
    assert not newer(point(t, event_id="a"), point(t, event_id="b"))
    same = point(t, event_id="a")
    assert not newer(same, same)  # strict: a snapshot received twice changes nothing


def test_points_are_immutable_and_compare_by_value() -> None:
    p = point(ms(2013, 1, 1, 9), 10)
    with pytest.raises(AttributeError):
        p.followers = 11
    lazy = DailyPoint.with_derived_id(ACCOUNT, p.observed_at, 10)
    assert lazy == p and hash(lazy) == hash(p)
    assert lazy.event_id == p.event_id
    assert point(p.observed_at, 11) != p
    assert point(p.observed_at, 10, event_id="other") != p


def test_points_pickle_and_copy() -> None:
    explicit = point(ms(2013, 1, 1, 9), 10, AccountStatus.DELETED, event_id="e1", posts_30d=4)
    lazy = DailyPoint.with_derived_id(ACCOUNT, ms(2013, 1, 2, 9), 10, posts_30d=0)
    for p in (explicit, lazy):
        assert pickle.loads(pickle.dumps(p)) == p  # noqa: S301 - our own bytes, just written
        assert copy.copy(p) == p == copy.deepcopy(p)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2013, 6, 30, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(2024, 2, 29, 12, 0, 0, 1000, tzinfo=UTC),
        datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_derived_event_id_is_the_contracts(moment: datetime) -> None:
    t = (moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
    assert derived_event_id("youtube:UCabc", round(t * 1000)) == derive_event_id("youtube:UCabc", moment)


def test_derived_event_id_is_the_contracts_on_random_instants() -> None:
    rng = random.Random(7)
    low, high = ms(2000, 1, 1), ms(2099, 12, 31)
    for _ in range(2000):
        t = rng.randrange(low, high)
        if rng.random() < 0.5:
            t -= t % 1000  # whole seconds, the common case
        account = rng.choice(["x:grenoble", "facebook:123456", "mastodon:mairie@social.example"])
        assert derived_event_id(account, t) == derive_event_id(account, from_ms(t))


def test_from_ms_is_the_instant_of_its_milliseconds() -> None:
    rng = random.Random(3)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for t in [0, 1, 999, 1000, -1, -999, -1001, *(rng.randrange(-(2**42), 2**43) for _ in range(2000))]:
        assert from_ms(t) == epoch + timedelta(milliseconds=t)
        assert from_ms(t).tzinfo is UTC
        assert to_ms(from_ms(t)) == t
