"""TaskPlatform: task API, migration service and Kubernetes operator.

The sub-packages live in the repository's top-level folders (api/, migration/, operator/); this
directory links them under one import name because the stdlib already owns ``operator``.
"""
