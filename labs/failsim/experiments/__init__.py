"""`lab experiment failure-sim`: scenario files run on the chain (or simulated), claims checked."""
