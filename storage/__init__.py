"""Persistence: the database (edits, settings, moderation) and blob stores for input photos."""
