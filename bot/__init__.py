"""A Telegram bot that edits photos with AI image-edit providers."""
