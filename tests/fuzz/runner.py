"""Runs the schemathesis CLI (the engine and report a user gets) against a served application."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Cases per operation and phase: bounded in `make test`, larger in `make fuzz`.
EXAMPLES = int(os.environ.get("BAROMETRE_FUZZ_EXAMPLES", "20"))
SEED = os.environ.get("BAROMETRE_FUZZ_SEED", "1")
REPORTS = ROOT / "test-artifacts" / "schemathesis"


def run_schemathesis(name: str, base_url: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Every check (tests/fuzz/hooks.py replaces two built-ins by equivalents that know the documented
    exceptions), every phase (examples, coverage, fuzzing, stateful), with ``token`` as the bearer token;
    a JUnit report in test-artifacts/schemathesis/<name>.xml. One worker: hypothesis describes lambdas
    with ``ast.parse``, which CPython 3.11 does not make safe across threads ("AST constructor
    recursion depth mismatch" with --workers 2)."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{base_url}/openapi.json",
        "--checks", "all",
        "--exclude-checks", "positive_data_acceptance,negative_data_rejection",
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", str(EXAMPLES), "--seed", SEED, "--workers", "1",
        "--request-timeout", "30", "--max-response-time", "60",
        "--suppress-health-check", "all", "--output-truncate", "false", "--no-color",
        "--report", "junit", "--report-junit-path", str(REPORTS / f"{name}.xml"),
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
