"""Shared building blocks of every aidpost component: settings, db, bus, tokens, http."""
