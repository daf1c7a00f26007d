"""The library an identity service embeds to emit lifecycle events to Kafka."""
