"""Alerts: detecting what is unusual about an account, and keeping the noise down (docs/ALERTS.md).

- :mod:`.detection`: pure detectors over an account's daily points (spike, drop, gone, new, dormant);
- :mod:`.noise`: the Alertmanager-like state machine (one open alert per account and type, cooldown,
  platform-wide incidents that inhibit per-account alerts, silences);
- :mod:`.codec`, :mod:`.records`: the bytes and rows of the alert stage (candidates on the internal
  topic, the stored state, ``alerts``/``incidents`` rows, ``alerts.v1``/``incidents.v1`` records);
- :mod:`.store`: the alert stage's ClickHouse reads and writes, the one module here with I/O.

Everything else has no Kafka, no ClickHouse and no clock: the scoring worker (``services.scoring.app``)
feeds these and publishes what they decide. Seeded, labelled series that measure detection and noise
control are bench code: ``bench/_alerts_evaluation.py`` (``bench/alerts_eval.py`` prints the figures).
"""

from services.scoring.alerts.detection import (
    DEFAULT_PARAMS,
    Baseline,
    Detection,
    DetectorParams,
    baseline,
    detect_audience,
    detect_dormant,
    detect_gone,
    detect_new,
    detect_point,
    detect_silence,
    index_of,
    reporting_floor,
    round_value,
)
from services.scoring.alerts.noise import (
    DEFAULT_NOISE,
    Candidate,
    Incident,
    NoiseControl,
    NoiseParams,
    Outcome,
    Silence,
    Step,
    Verdict,
    incident_id,
    matching_silence,
    to_alert,
)

__all__ = [
    "DEFAULT_NOISE",
    "DEFAULT_PARAMS",
    "Baseline",
    "Candidate",
    "Detection",
    "DetectorParams",
    "Incident",
    "NoiseControl",
    "NoiseParams",
    "Outcome",
    "Silence",
    "Step",
    "Verdict",
    "baseline",
    "detect_audience",
    "detect_dormant",
    "detect_gone",
    "detect_new",
    "detect_point",
    "detect_silence",
    "incident_id",
    "index_of",
    "matching_silence",
    "reporting_floor",
    "round_value",
    "to_alert",
]
