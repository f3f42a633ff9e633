"""Time from `barometre run` on a fresh data directory to a dashboard whose figures are complete.

Starts the whole stack (Kafka, the ClickHouse endpoint, the services and the simulator, exactly as
`make run` does) on ports and a data directory of its own, then asks, every few seconds:

- the scoring group's lag on the snapshots topic (services/common/lag.py, what GET /v1/status serves);
- the figures of every panel of the dashboard, as of a fixed instant just after the simulator's first
  live step (``at``: so that later live steps do not change them): the rankings of Facebook communes on
  the 1-day, 7-day, 30-day and 90-day growth (500 entities), the monthly presence series and the
  presence on every platform.

It stops once the whole back-fill is scored (the simulator logs "back-fill complete", or with the old
schedule its first live step is published, and the lag is 0), takes the answers then as the final
ones, and prints:

- **figures complete**: the first reading with the lag under the provisional threshold
  (BAROMETRE_SCORING_PROVISIONAL_EVENTS, 20,000: GET /v1/status says "final") from which every later
  such reading equals the final answers: what a newcomer waits for (readings during a live step, when
  the lag is above the threshold for a few seconds, are not read). The next live step (every 15 minutes)
  replaces today's daily points, hence what is read as of the first one: the run stops there at the
  latest, and the answers last read before it stand for the final ones;
- **history complete**: when the lag reached 0 with the whole back-fill in. With ``--timeout`` first,
  the last answers read stand for the final ones (a check against part of the history only).

On a machine shared with other work the figures are upper bounds. `--repo` runs another checkout's
stack (e.g. an export of an older commit, to measure the old default) with this checkout's bench.

    .venv/bin/python bench/fresh_start.py [--base-port 47000] [--data-dir /tmp/fresh] [--repo .]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services.api.routes.presence import add_months  # noqa: E402
from services.common.lag import scoring_lag  # noqa: E402
from services.common.settings import Settings  # noqa: E402

LIVE_RE = re.compile(r"simulated (\S+): (\d+) snapshots")
PLATFORMS = ("facebook", "x", "instagram", "youtube", "linkedin", "tiktok", "bluesky", "mastodon", "threads")


def figures(api: httpx.Client, at: datetime) -> dict[str, Any]:
    """Every panel's figures as of ``at`` (JSON answers, without the fields that name the time asked)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    out: dict[str, Any] = {}
    for window in ("1d", "7d", "30d", "90d"):
        r = api.get(
            "/v1/rankings",
            params={
                "platform": "facebook",
                "category": "commune",
                "window": window,
                "metric": "growth_abs",
                "by": "entity",
                "limit": 500,
                "at": stamp,
            },
        )
        r.raise_for_status()
        out[f"rankings_{window}"] = [(i["entity_id"], i["value"], i["followers"]) for i in r.json()["items"]]
    # The dashboard's monthly points: the same day and time of each month, ending at ``at``.
    start = add_months(at, -3).strftime("%Y-%m-%dT%H:%M:%SZ")
    for platform in ("facebook", "x", "instagram"):
        r = api.get(
            "/v1/presence/series",
            params={"platform": platform, "category": "commune", "from": start, "to": stamp, "step": "month"},
        )
        r.raise_for_status()
        out[f"presence_series_{platform}"] = r.json()["points"]
    for platform in PLATFORMS:
        r = api.get("/v1/presence", params={"platform": platform, "category": "commune", "at": stamp})
        r.raise_for_status()
        body = r.json()
        out[f"presence_{platform}"] = {k: v for k, v in body.items() if k not in ("at",)}
    # Not the average score as of ``at``: it reads the daily point of ``at``'s day, which the next live
    # step of the same day replaces (the point in force at ``at`` is then yesterday's).
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-port", type=int, default=47000, help="api = base, ingest +1, scoring +2, …")
    ap.add_argument("--data-dir", type=Path, default=None, help="fresh directory (default: a temporary one)")
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose stack runs")
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    ap.add_argument("--every", type=float, default=3.0, help="seconds between readings")
    args = ap.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="barometre-fresh-"))
    if data_dir.exists() and any(data_dir.iterdir()):
        sys.exit(f"{data_dir} is not empty: the measure starts from a fresh data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    base = args.base_port
    env_ports = {
        "BAROMETRE_DATA_DIR": str(data_dir),
        "BAROMETRE_API_PORT": str(base),
        "BAROMETRE_INGEST_PORT": str(base + 1),
        "BAROMETRE_SCORING_PORT": str(base + 2),
        "BAROMETRE_POLLER_PORT": str(base + 3),
        "BAROMETRE_KAFKA_BOOTSTRAP": f"127.0.0.1:{base + 92}",
        "BAROMETRE_CLICKHOUSE_URL": f"http://127.0.0.1:{base + 23}",
        "BAROMETRE_CACHE_DIR": os.environ.get("BAROMETRE_CACHE_DIR", str(REPO / ".cache")),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAROMETRE_")}
    env.update(env_ports, PYTHONPATH=str(args.repo.resolve()))
    settings = Settings.model_validate(
        {
            "kafka_bootstrap": env_ports["BAROMETRE_KAFKA_BOOTSTRAP"],
            "clickhouse_url": env_ports["BAROMETRE_CLICKHOUSE_URL"],
        }
    )
    threshold = settings.scoring_provisional_events
    sim_log = data_dir / "logs" / "simulator.log"

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # stop the stack on the way out (finally), as Ctrl-C does

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    stack = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run"],
        cwd=args.repo,
        env=env,
        stdout=(data_dir / "run.out").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    readings: list[tuple[float, int, dict[str, Any] | None]] = []
    at: datetime | None = None
    marks: dict[str, float] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{base}", timeout=30) as api:
            while time.monotonic() - started < args.timeout:
                time.sleep(args.every)
                if stack.poll() is not None:
                    sys.exit(f"the stack stopped: see {data_dir}/run.out and {data_dir}/logs")
                elapsed = time.monotonic() - started
                text = sim_log.read_text(errors="replace") if sim_log.exists() else ""
                if at is None and (found := LIVE_RE.search(text)):
                    at = datetime.fromisoformat(found.group(1)) + timedelta(minutes=1)
                    marks["first live step published"] = elapsed
                try:
                    lag = scoring_lag(settings, timeout_s=3.0)
                except Exception:  # noqa: S112  # Kafka not started yet
                    continue
                if lag.group_known:
                    marks.setdefault("first batch scored", elapsed)
                answers = None
                if at is not None and lag.behind <= threshold:
                    try:
                        answers = figures(api, at)
                    except httpx.HTTPError:
                        answers = None
                if at is not None and len(LIVE_RE.findall(text)) > 1:
                    # The next live step replaces today's daily points, and so what is read "as of" the
                    # first one: later readings do not compare. What was read before stands.
                    print("the next live step is published: the answers last read stand as final", flush=True)
                    break
                readings.append((elapsed, lag.behind, answers))
                print(
                    f"{elapsed:7.1f}s  behind {lag.behind:>9,}  scored {lag.committed:>9,}"
                    f"  {'figures read' if answers else ''}",
                    flush=True,
                )
                history_in = "back-fill complete" in text or (
                    at is not None and "more days follow" not in text
                )
                if at is not None and history_in and lag.behind == 0 and answers is not None:
                    marks["history complete"] = elapsed
                    break
            else:
                print(
                    f"timed out after {args.timeout:g}s: the final answers are the last ones read", flush=True
                )
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(10)

    final = next((a for _, _, a in reversed(readings) if a is not None), None)
    complete = None
    for elapsed, _, answers in reversed(readings):
        if answers is None:
            continue  # lag above the threshold (a live step being scored): not read
        if answers != final:
            break
        complete = elapsed
    (data_dir.parent / (data_dir.name + "-readings.json")).write_text(
        json.dumps([{"s": round(e, 1), "behind": b, "answers": a} for e, b, a in readings])
    )
    differing = []
    first_read = next((r for r in readings if r[2] is not None), None)
    if first_read is not None and final is not None:
        differing = [k for k in final if first_read[2] is not None and first_read[2].get(k) != final[k]]
    result = {
        "repo": str(args.repo),
        "figures_complete_s": complete,
        **{k.replace(" ", "_") + "_s": round(v, 1) for k, v in marks.items()},
        "first_figures_read_s": None if first_read is None else round(first_read[0], 1),
        "panels_differing_at_first_read": differing,
        "ranked_30d": None if final is None else len(final["rankings_30d"]),
        "threshold_events": threshold,
    }
    print(json.dumps(result, indent=2))
    print(
        f"figures complete {complete:.0f} s after `barometre run` started"
        if complete
        else "figures never complete"
    )
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
