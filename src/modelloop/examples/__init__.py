"""Runnable examples: ``python -m modelloop.examples.quickstart`` (what ``make demo`` runs)."""
