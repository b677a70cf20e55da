"""The HTTP side every lab service shares: one app factory and its parts."""

from labs.web.app import create_service_app, register_health_check, register_scrape_hook
from labs.web.auth import AdminDep
from labs.web.problems import ProblemError

__all__ = [
    "AdminDep",
    "ProblemError",
    "create_service_app",
    "register_health_check",
    "register_scrape_hook",
]
