"""Where snapshots come from: files, platform pollers and the simulator. Each yields AccountSnapshot
events; the publisher (services.ingest.publisher) sends them to Kafka in batches."""
