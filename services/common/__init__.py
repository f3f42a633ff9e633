"""Code shared by every service: settings, topic and table names, event models, the ClickHouse store."""
