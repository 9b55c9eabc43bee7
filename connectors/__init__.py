"""Connectors: the producer SDK and CLI, delivery intake, SQL sinks and the read API.

They move records between Kafka and the outside world; domain rules stay in
`processors`, the contract in `schemas`.
"""
