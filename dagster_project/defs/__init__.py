"""Dagster definitions by stage, one module each; definitions.py assembles them."""
