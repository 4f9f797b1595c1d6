"""The orders the migration reads a collection in. Its own module, without pymongo: the operator (whose image
has no MongoDB driver) publishes the same choice in the DataMigration resource."""

import enum


class ReadOrder(enum.StrEnum):
    """How a collection is read; what each means for speed and resume is in migration/source.py."""

    NATURAL = "natural"
    ID = "id"


# The choice as users read it, in the CLI's help and the DataMigration CRD alike.
DESCRIPTION = (
    "natural: the collections' storage order, streamed from the first document; a resumed run starts a "
    "collection over if the source changed meanwhile. id: `_id` order, resumes exactly while the source "
    "changes, but a server without an ordered `_id` index (FerretDB) sorts the whole collection before "
    "sending anything. A resumed collection keeps the order it started with."
)
