"""The chain: FastAPI hops that call each other through client policies, with faults on each.

One app factory (`app.create_app`) serves every hop; settings give it a name, its
dependencies' URLs and whether its work is a side effect. The runner starts them as
real processes (`processes.Chain`): `gateway -> orders -> payments`, and `catalog`
beside `orders` for the bulkhead.
"""
