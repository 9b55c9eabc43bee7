"""The local Kafka broker and schema registry, fetched and run by the project itself."""

from convotrail.stack.local import Endpoints, LocalStack, ServiceStatus

__all__ = ["Endpoints", "LocalStack", "ServiceStatus"]
