"""Bytes of the alert stage: candidates on the internal topic, explanations for ClickHouse, and the
noise-control state kept in a Faust table.

A :class:`~.noise.Candidate` travels from the scoring agent (which holds accounts) to the alert stage
(which holds platforms) on ``alert-candidates.v1``, keyed by its platform (:func:`candidate_key`) so
that every candidate of a platform reaches the one :class:`~.noise.NoiseControl` of that platform. The
value is compact JSON, every field of the detection included::

    {"v":1,"account_id":"x:grenoble","entity_id":"COM:38185","type":"audience_drop",
     "observed_at":1732780800000,"value":4400.0,"expected":5010.0,"score":97.1,"severity":"critical",
     "since":1732694400000,"details":{...}}

Instants are epoch milliseconds, as in the detectors. Floats that JSON cannot carry (NaN, ±inf) are
written as ``null`` rather than failing a batch: an explanation with a hole is better than none.

The topic is internal (the worker writes it, the worker reads it) but versioned all the same (``v``),
so that a worker of the next version can read what an older one left behind.

Pure: no Kafka, no ClickHouse.
"""

from __future__ import annotations

import json
import math
import pickle
import zlib
from collections.abc import Mapping
from typing import Final

from services.common.names import AlertSeverity, AlertType
from services.scoring.alerts.detection import Detection
from services.scoring.alerts.noise import Candidate, NoiseControl, NoiseParams

CANDIDATE_FORMAT: Final = 1
# The first byte of a stored NoiseControl: zlib of its pickle follows. 2 since noise control keeps its
# incidents' members in lists and sets (1: tuples, quadratic at 100,000 members); a state of an older
# format is refused (ValueError), and the worker starts that platform afresh.
STATE_FORMAT: Final = b"\x02"


class CandidateFormatError(ValueError):
    """A record of the candidates topic that is not a candidate this worker can read."""


def finite(value: object) -> object:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None, in nested lists and dicts
    (tuples become lists, as JSON has only arrays)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def details_json(detection: Detection) -> str:
    """The explanation of a detection as JSON text (the ``details`` column of ClickHouse ``alerts``)."""
    return json.dumps(finite(detection.details), separators=(",", ":"), allow_nan=False, sort_keys=True)


def candidate_key(candidate: Candidate) -> bytes:
    """The record key of a candidate: its platform, so that a platform's candidates share a partition."""
    return candidate.platform.encode()


def encode_candidate(candidate: Candidate) -> bytes:
    """The record value of a candidate on ``alert-candidates.v1``."""
    d = candidate.detection
    body = {
        "v": CANDIDATE_FORMAT,
        "account_id": candidate.account_id,
        "entity_id": candidate.entity_id,
        "type": d.type.value,
        "observed_at": d.observed_at,
        "value": d.value,
        "expected": d.expected,
        "score": d.score,
        "severity": d.severity.value,
        "since": d.since,
        "details": d.details,
    }
    return json.dumps(finite(body), separators=(",", ":"), allow_nan=False).encode()


def decode_candidate(data: bytes | None) -> Candidate:
    """The candidate of a record value; :class:`CandidateFormatError` says what is wrong otherwise."""
    if data is None:
        raise CandidateFormatError("the value is null")
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CandidateFormatError(f"the value is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CandidateFormatError("the value is not a JSON object")
    if body.get("v") != CANDIDATE_FORMAT:
        raise CandidateFormatError(f"unknown candidate format {body.get('v')!r} (this worker reads 1)")
    try:
        account_id = _text(body, "account_id")
        if ":" not in account_id:
            raise CandidateFormatError(f"account_id {account_id!r} is not <platform>:<id>")
        entity_id = body["entity_id"]
        if entity_id is not None and not isinstance(entity_id, str):
            raise CandidateFormatError("entity_id is neither text nor null")
        details = body["details"]
        if not isinstance(details, dict):
            raise CandidateFormatError("details is not an object")
        detection = Detection(
            type=AlertType(body["type"]),
            observed_at=_integer(body, "observed_at"),
            value=_number(body, "value"),
            expected=_number(body, "expected"),
            score=_number(body, "score"),
            severity=AlertSeverity(body["severity"]),
            details=details,
            since=None if body["since"] is None else _integer(body, "since"),
        )
    except KeyError as exc:
        raise CandidateFormatError(f"field {exc.args[0]!r} is missing") from None
    except ValueError as exc:  # an unknown type or severity
        if isinstance(exc, CandidateFormatError):
            raise
        raise CandidateFormatError(str(exc)) from None
    return Candidate(account_id, entity_id, detection)


def _text(body: Mapping[str, object], name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or not value:
        raise CandidateFormatError(f"{name} is not a non-empty text")
    return value


def _integer(body: Mapping[str, object], name: str) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise CandidateFormatError(f"{name} is not an integer (epoch milliseconds)")
    return value


def _number(body: Mapping[str, object], name: str) -> float | None:
    value = body[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CandidateFormatError(f"{name} is neither a number nor null")
    return float(value)


def dump_control(control: NoiseControl) -> bytes:
    """The bytes of a platform's noise-control state (a value of the alert stage's Faust table).

    A pickle behind a format byte: the state is the object itself (episodes, groups, held detections,
    incidents), which only this worker's code reads back, from its own changelog topic. Compressed
    (zlib, fastest level): held detections repeat the same explanation keys, and a platform-wide purge
    holds thousands of them, whose plain pickle (~350 bytes each) would pass Kafka's 1 MB record limit;
    1,500 held drops take ~22 KB, compressed in under a millisecond.
    """
    return STATE_FORMAT + zlib.compress(pickle.dumps(control, protocol=pickle.HIGHEST_PROTOCOL), 1)


def load_control(data: bytes, params: NoiseParams) -> NoiseControl:
    """The noise control stored by :func:`dump_control`, with ``params`` (the worker's settings of
    now, which may differ from those it was saved with). ValueError when it cannot be read."""
    if data[:1] != STATE_FORMAT:
        raise ValueError(f"unknown noise-control state format {data[:1]!r}")
    try:
        control = pickle.loads(zlib.decompress(data[1:]))  # noqa: S301 - our own state, our own topic
    except Exception as exc:  # a class renamed or reshaped since it was saved
        raise ValueError(f"the noise-control state cannot be read: {exc}") from exc
    if not isinstance(control, NoiseControl):
        raise ValueError(f"the noise-control state is a {type(control).__name__}, not a NoiseControl")
    control.params = params
    return control
