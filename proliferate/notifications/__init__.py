"""Notifications: what happened, who hears of it, and sending it."""
