"""The lab runtime: servers, settings, clients, app factory, CLI, and the smaller labs."""
