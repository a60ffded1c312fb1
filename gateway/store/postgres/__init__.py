"""The PostgreSQL backend of the store protocol (``MEMORY_STORE_URL=postgresql://...``)."""
