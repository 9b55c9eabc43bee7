"""Conversation state and timeline: the pure core (`core.evolve`), its narration, its shell."""
