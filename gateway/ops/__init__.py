"""The operator's commands that read or edit a gateway's state: ``status``, ``queue``."""
