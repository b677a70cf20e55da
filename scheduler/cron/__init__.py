"""Cron schedules that enqueue each tick exactly once, however many runners run them.

`scheduler.cron.schedule` is the pure domain (schedules, ticks); `scheduler.cron.runner`
is the asyncio runner and its process (`python -m scheduler.cron`, `lab cron`).
"""
