"""The rate limiter's experiments: runs on real Redis that measure a portfolio claim.

Each module has an async `run(context)` registered in `labs.experiments.EXPERIMENTS`
(`lab experiment <name> [--full]`), writes its results file and plot to
`rate_limiter/results/`, and returns a one-line summary that puts the measured figure
next to the claim, whether the claim held or not.

- `clock_skew`: five limiters (token bucket and GCRA on Redis `TIME`, a token bucket
  and a sliding log on client clocks, a fixed window on each service's clock) under
  0, 50 and 200 ms of client clock skew, against the exact allowance.
- `multi_region`: three regions sharing one limit across injected delays.
"""
