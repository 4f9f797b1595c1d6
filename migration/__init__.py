"""MongoDB to PostgreSQL migration service for TaskPlatform."""
