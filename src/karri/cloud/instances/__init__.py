"""Instances and reservations: desired state in the database, a reconciler drives the node."""
