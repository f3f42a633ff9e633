"""The bytes of the alert stage: candidates on alert-candidates.v1 and the stored noise-control state."""

from __future__ import annotations

import json
import pickle
import re
import zlib
from dataclasses import replace

import pytest

from services.common.names import AlertSeverity, AlertType
from services.scoring.alerts.codec import (
    STATE_FORMAT,
    CandidateFormatError,
    candidate_key,
    decode_candidate,
    details_json,
    dump_control,
    encode_candidate,
    finite,
    load_control,
)
from services.scoring.alerts.detection import Detection
from services.scoring.alerts.noise import Candidate, NoiseControl, NoiseParams, Verdict

DROP = Detection(
    AlertType.AUDIENCE_DROP,
    1_732_780_800_000,
    4400.0,
    5010.5,
    97.12,
    AlertSeverity.CRITICAL,
    {"change": -600, "z": -97.12, "flags": ["round_number", "weekend"], "baseline_from": 1_728_000_000_000},
    1_732_694_400_000,
)


def test_a_candidate_survives_the_topic() -> None:
    candidate = Candidate("x:grenoble", "COM:38185", DROP)
    data = encode_candidate(candidate)
    assert decode_candidate(data) == candidate
    assert candidate_key(candidate) == b"x"
    body = json.loads(data)
    assert body["v"] == 1 and body["observed_at"] == DROP.observed_at and body["details"]["change"] == -600
    assert b" " not in data  # compact


def test_a_candidate_without_entity_or_figures() -> None:
    silent = Detection(AlertType.ACCOUNT_GONE, 1_000, 12.0, None, None, AlertSeverity.INFO, {"flags": []})
    candidate = Candidate("mastodon:@mairie@example.fr", None, silent)
    assert decode_candidate(encode_candidate(candidate)) == candidate


def test_non_finite_floats_become_null_rather_than_failing() -> None:
    odd = Detection(
        AlertType.AUDIENCE_SPIKE,
        5,
        float("inf"),
        float("nan"),
        1.0,
        AlertSeverity.INFO,
        {"share": float("nan"), "nested": [1.5, float("-inf")], "pair": (1, 2)},
    )
    body = json.loads(encode_candidate(Candidate("x:a", None, odd)))
    assert body["value"] is None and body["expected"] is None
    assert body["details"] == {"share": None, "nested": [1.5, None], "pair": [1, 2]}
    assert json.loads(details_json(odd)) == body["details"]
    assert finite({1: (float("nan"),)}) == {"1": [None]}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "null"),
        (b"\xff", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"v": 2}', "unknown candidate format 2"),
        (b'{"v": 1}', "'account_id' is missing"),
    ],
)
def test_unreadable_records_say_why(data: bytes | None, reason: str) -> None:
    with pytest.raises(CandidateFormatError, match=reason):
        decode_candidate(data)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"account_id": "grenoble"}, "not <platform>:<id>"),
        ({"entity_id": 5}, "entity_id"),
        ({"type": "audience_jump"}, "audience_jump"),
        ({"severity": "loud"}, "loud"),
        ({"observed_at": "2024-01-01"}, "observed_at is not an integer"),
        ({"observed_at": 1.5}, "observed_at is not an integer"),
        ({"value": "many"}, "value is neither a number nor null"),
        ({"since": True}, "since is not an integer"),
        ({"details": []}, "details is not an object"),
    ],
)
def test_bad_fields_say_which(change: dict[str, object], reason: str) -> None:
    body = {**json.loads(encode_candidate(Candidate("x:a", None, DROP))), **change}
    with pytest.raises(CandidateFormatError, match=reason):
        decode_candidate(json.dumps(body).encode())


def test_the_noise_control_state_round_trips_with_the_params_of_now() -> None:
    control = NoiseControl(NoiseParams(group_wait_ms=60_000))
    step = control.process(1_000, [Candidate("x:a", None, DROP)])
    assert [o.verdict for o in step.outcomes] == [Verdict.PENDING]
    restored = load_control(dump_control(control), NoiseParams(group_wait_ms=0))
    assert restored.params.group_wait_ms == 0 and restored.pending == 1
    assert restored.flush(60_999).outcomes == []  # held until the release time it was given
    released = restored.flush(61_000)
    assert [o.verdict for o in released.outcomes] == [Verdict.EMIT]
    # the restored state remembers the published alert: the same detection again is a duplicate
    again = load_control(dump_control(restored), NoiseParams(group_wait_ms=0))
    assert [o.verdict for o in again.process(62_000, [Candidate("x:a", None, DROP)]).outcomes] == [
        Verdict.DUPLICATE
    ]


def test_a_large_state_stays_well_below_kafkas_record_limit() -> None:
    control = NoiseControl(NoiseParams())
    held = [
        Candidate(
            f"facebook:{i}",
            None,
            replace(DROP, observed_at=DROP.observed_at + i, details={**DROP.details, "change": -i}),
        )
        for i in range(5_000)
    ]
    control.process(1_000, held)
    assert control.pending == 5_000
    assert len(dump_control(control)) < 100_000  # Kafka refuses records over 1 MB by default


def test_unreadable_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown noise-control state format"):
        load_control(b"\x09junk", NoiseParams())
    with pytest.raises(ValueError, match="cannot be read"):
        load_control(STATE_FORMAT + b"junk", NoiseParams())
    with pytest.raises(ValueError, match="not a NoiseControl"):
        load_control(STATE_FORMAT + zlib.compress(pickle.dumps({"a": 1})), NoiseParams())


def test_a_state_of_the_previous_format_is_refused() -> None:
    # Format 1 kept incidents' members in tuples: its pickles do not fit the classes of now, and the
    # worker starts such a platform afresh (it catches the ValueError).
    assert STATE_FORMAT == b"\x02"
    old = b"\x01" + zlib.compress(pickle.dumps(NoiseControl(NoiseParams())))
    with pytest.raises(ValueError, match=re.escape("unknown noise-control state format b'\\x01'")):
        load_control(old, NoiseParams())
