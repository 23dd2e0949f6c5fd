"""Upkeep of a table's storage: the maintenance policy (policy), compaction of small fragments
and automatic filter indexes (compaction, filters), retention of old versions and removal of
orphaned files (retention, orphans).

This package's ``__init__`` imports nothing, so that the low layers (``storage`` reads
:class:`~lakehouse.maintenance.policy.MaintenancePolicy`) can import the policy without pulling
in the modules that write tables.
"""
