"""MongoDB → PostgreSQL migration of the legacy task data into the API's schema (CLI `taskplatform-migrate`)."""
