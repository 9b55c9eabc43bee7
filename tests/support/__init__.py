"""Helpers shared by the test suite: servers started for the session, waiting."""
