"""The event contract: Avro schemas (avro/*.avsc), the Confluent wire format and serde.

Nothing here talks to Kafka; the registry client is the only network-facing piece.
"""
