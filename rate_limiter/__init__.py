"""Rate limiting on Redis server time: five algorithms, one atomic script, exact models.

`domain` holds the vocabulary (Limit, Decision, CostTooHigh), `models` the pure-Python
specification of each algorithm, `store` the Redis adapter that runs
`lua/limiter.lua`, and `accuracy` the sliding window's error against the exact log.
"""
