"""The ingest service: validates AccountSnapshot events and publishes them to Kafka.

It never writes to ClickHouse: the scoring worker does, from the topic.
"""
