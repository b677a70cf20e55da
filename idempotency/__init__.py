"""A payments API comparing six idempotency strategies under retries, concurrency and crashes.

One domain (`domain.py`), one payment provider process that keeps the ledger of truth
(`provider/`), and six strategies behind one interface (`strategies/`), each served at
`/v1/{strategy}/payments`. `lab serve idempotency` runs the API with its provider and
an outbox charger; `README.md` says what each strategy survives.
"""
