"""TaskPlatform task API: FastAPI service with JWT auth, revocation and per-user tasks."""
