"""The SQLite backend of the store: one module per concept, functions that take the
connection, and ``store.SQLiteStore`` exposing each as an async method."""
