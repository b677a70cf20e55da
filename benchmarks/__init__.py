"""Benchmarks: Locust runs and in-process measurements behind the figures the READMEs quote.

`lab bench <target>` starts what a target needs on the running servers, runs Locust
headless against it and its peers in one invocation, measures in-process decisions,
and writes `benchmarks/results/<target>/<timestamp>.json` with ratios and verdicts.
"""
