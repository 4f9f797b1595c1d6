"""The orders the migration reads a collection in. Its own module, without pymongo: the operator (whose image
has no MongoDB driver) publishes the same choice in the DataMigration resource."""

import enum


class ReadOrder(enum.StrEnum):
    """How a collection is read; what each means for speed and resume is in migration/source.py."""

    NATURAL = "natural"
    ID = "id"
