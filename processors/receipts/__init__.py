"""Receipts: read receipts per message and viewer, delivery status per message and recipient."""
