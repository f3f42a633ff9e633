"""The good-practice score score/1: each component at its edges, then how they combine."""

from __future__ import annotations

import pytest

from services.common.names import SCORE_FORMULA
from services.scoring.maths import good_practice
from services.scoring.maths.score import conversation, engagement, growth_component, human, regularity
from tests.unit.scoring.factories import point

T = 1_356_998_400_000  # 2013-01-01


@pytest.mark.parametrize(("posts", "expected"), [(0, 0.0), (3, 0.25), (6, 0.5), (12, 1.0), (40, 1.0)])
def test_regularity_is_linear_up_to_12_posts(posts: int, expected: float) -> None:
    assert regularity(posts) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("interactions", "posts", "followers", "expected"),
    [
        (0, 10, 1000, 0.0),  # no interaction at all
        (1, 10, 1000, 0.0),  # 0.01 % per post: the floor
        (1, 10, 2000, 0.0),  # below the floor
        (10, 10, 1000, 0.5),  # 0.1 %: half-way on the log scale
        (100, 10, 1000, 1.0),  # 1 %
        (1000, 10, 1000, 1.0),  # beyond 1 %
        (3, 1, 1000, 0.7385606273598312),  # log10(0.003) + 4 = 1.477 → / 2
    ],
)
def test_engagement_is_log_scaled_from_0_01_to_1_percent(
    interactions: int, posts: int, followers: int, expected: float
) -> None:
    assert engagement(interactions, posts, followers) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("replies", "posts", "expected"), [(0, 10, 0.0), (2, 10, 0.4), (5, 10, 1.0), (30, 10, 1.0)]
)
def test_conversation_is_linear_up_to_half_a_reply_per_post(
    replies: int, posts: int, expected: float
) -> None:
    assert conversation(replies, posts) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("automated", "posts", "expected"), [(0, 10, 1.0), (5, 10, 0.5), (10, 10, 0.0), (12, 10, 0.0)]
)
def test_human_is_the_share_of_posts_not_automated(automated: int, posts: int, expected: float) -> None:
    assert human(automated, posts) == pytest.approx(expected)


@pytest.mark.parametrize(("pct", "expected"), [(-5.0, 0.0), (0.0, 0.0), (0.5, 0.25), (2.0, 1.0), (30.0, 1.0)])
def test_growth_is_linear_from_0_to_2_percent_a_month(pct: float, expected: float) -> None:
    assert growth_component(pct) == pytest.approx(expected)


def test_a_complete_score() -> None:
    p = point(T, 1000, posts_30d=6, interactions_30d=6, replies_30d=3, automated_posts_30d=3)
    score = good_practice(p, 1.0)
    assert score.components == pytest.approx(
        {"regularity": 0.5, "engagement": 0.5, "conversation": 1.0, "human": 0.5, "growth": 0.5}
    )
    assert list(score.components) == ["regularity", "engagement", "conversation", "human", "growth"]
    assert score.value == pytest.approx(5 * 3.0 / 5)
    assert score.formula == SCORE_FORMULA == "score/1"


def test_the_best_score_is_5() -> None:
    p = point(T, 1000, posts_30d=30, interactions_30d=3000, replies_30d=30, automated_posts_30d=0)
    assert good_practice(p, 10.0).value == 5.0


def test_an_account_that_did_not_post_has_regularity_0_and_no_per_post_component() -> None:
    p = point(T, 1000, posts_30d=0, interactions_30d=0, replies_30d=0, automated_posts_30d=0)
    score = good_practice(p, 3.0)
    assert score.components == {"regularity": 0.0, "growth": 1.0}
    assert score.value is None  # two components: fewer than three


def test_three_components_are_enough() -> None:
    p = point(T, 1000, posts_30d=12, replies_30d=0)
    score = good_practice(p, 2.0)
    assert score.components == {"regularity": 1.0, "conversation": 0.0, "growth": 1.0}
    assert score.value == pytest.approx(5 * 2 / 3)


def test_unknown_figures_leave_their_component_out() -> None:
    assert good_practice(point(T, 1000), None).components == {}
    assert good_practice(point(T, 1000), None).value is None
    # No followers: engagement per follower is undefined.
    p = point(T, 0, posts_30d=12, interactions_30d=5, replies_30d=6, automated_posts_30d=0)
    assert set(good_practice(p, None).components) == {"regularity", "conversation", "human"}
