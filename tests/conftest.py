"""Shared test configuration: the lab's plugin is loaded from pyproject's addopts."""
