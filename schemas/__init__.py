"""The Tidings event contract: Avro schemas, pydantic models and the CloudEvents rendering."""
