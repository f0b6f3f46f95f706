"""The steward queue: every finding of every stage, in one schema (DESIGN.md)."""
