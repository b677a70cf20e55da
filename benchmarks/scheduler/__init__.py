"""`lab bench scheduler`: our job queue against SAQ, taskiq-redis and streaq on one Redis.

Not HTTP, so not Locust: each system is a module behind one small protocol
(`system.System`: enqueue no-op jobs, start K worker processes), every system's task
records its start the same way (`recorder`), `runner` runs the phases and `stats`
turns stamps into figures and verdicts. `target` names the systems and the profiles.
This package imports no peer library itself, so a worker process loads only its own.
"""
