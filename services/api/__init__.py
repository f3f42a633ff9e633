"""The api service: stateless FastAPI over ClickHouse (rankings, presence, history, alerts, dashboard)."""
