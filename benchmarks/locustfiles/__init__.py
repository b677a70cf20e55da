"""Locust files `lab bench` runs headless, one per target (chosen by path, never imported)."""
