"""Memory logic: the domain types and the service that adds, searches, updates and deletes."""
