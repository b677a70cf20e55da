"""The scheduler's experiments: each run by `lab experiment <name> [--full]`.

`chaos` (`chaos.py`) kills and restarts real worker processes (`workers.py`) under
load and proves, with an independent execution ledger that the handlers write
(`ledger.py`) and a pure checker (`checker.py`), that no job was lost or duplicated
beyond what the kills explain; its results file and plot go to `scheduler/results/`.
"""
