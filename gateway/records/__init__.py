"""Record backends: where a tap is recorded and later delivered. One module per backend.

``cobot`` records check-ins and check-outs at Cobot through the durable outbox. A new
backend (MOCO presences) is a new module implementing ``RecordBackend`` (records/base.py);
the outbox keeps which backend each entry belongs to.
"""
