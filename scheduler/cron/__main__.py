"""`python -m scheduler.cron`: run a cron runner process (see `scheduler.cron.runner`)."""

from scheduler.cron.runner import main

main()
