"""Delivery: provider notifications and bounce emails become delivery events."""
