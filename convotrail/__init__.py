"""convotrail: the Kafka event backbone for customer-support conversations.

This package holds the process wiring shared by every entry point: settings,
the local Kafka/registry stack, topic administration and the CLI. Domain code
lives in the sibling packages `schemas`, `processors` and `connectors`.
"""

__version__ = "0.1.0"
