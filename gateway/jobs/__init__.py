"""Consolidation jobs: periodic work that keeps each user's searchable memory small.

Jobs live in the store's ``jobs`` table (``gateway.store.sqlite.jobs``) and run in the gateway
process (``runner``), one user at a time, taking admission slots at background priority.
"""
