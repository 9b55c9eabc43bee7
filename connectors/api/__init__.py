"""The read API and the conversation page: timeline, state, delivery and receipts."""
