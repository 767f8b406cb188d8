"""Door rules: who may open a door now. One module per rule; the door's config picks one.

``check_in`` (the default) asks Cobot's preview and records a check-in; ``member`` lets in
any token the cache knows and records nothing. A new rule is a new module implementing
``DoorRule`` (rules/base.py), not a branch in the decider.
"""
