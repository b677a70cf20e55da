"""An at-least-once task scheduler on Redis: leases, heartbeats, fencing, backoff.

See docs/decisions/0005-scheduler-queue.md for the data layout and the guarantees.
"""
