"""Desired state, one module per child (as CloudNativePG's pkg/specs): pure functions from a typed spec (and the
credentials, and what a pass observed) to the manifests the operator should own. No cluster access here: the
passes (platform.py, datamigration.py, backups.py, restore.py) read the cluster, call these, and write.

`children.platform_children` is the production assembly of a TaskPlatform's children, in order, with the gating
between them; operator/README.md says which module owns what and where a new child goes.
"""
