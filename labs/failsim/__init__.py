"""The failure-simulation lab: a chain of real services, faults on every hop, client policies.

Pattern: three (and for the bulkhead, four) FastAPI services run as real processes —
`gateway -> orders -> payments`, and `catalog` beside `orders` — each with the lab's
fault injector (`labs.faults`) on its work route, and each calling its dependencies
through a stack of client policies (`labs.failsim.policies`): deadline propagation,
retries with the four AWS backoff schedules, a retry budget, a circuit breaker, a
bulkhead, per-attempt timeouts and idempotency keys. Scenario files
(`labs/failsim/scenarios/*.toml`) name the faults and the policies; the runner
(`labs.failsim.experiments`) measures success rate, latency, calls per request at
each hop and duplicate side effects, and checks each claim against its figure.
"""
