"""The end-to-end suite. A package (pytest 9 gives package scope only to packages), so that its package-scoped
cluster (conftest.py) goes when the suite ends, not with the session."""
