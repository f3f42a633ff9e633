"""The poller service (``barometre poller``): every registered account read on its cadence, within
each platform's documented rate budget.

- ``schedule``: cadences, back-off, the schedule, request pacing and the plan (pure);
- ``state``: ``poll_state`` and ``poll_failures`` in ClickHouse, and the registry rows a poll changes;
- ``service``: the running service and its HTTP face (/healthz, /readyz, /metrics);
- ``plan``: ``barometre poll --plan``.
"""
