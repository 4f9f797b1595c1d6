"""Every length and count limit on user data, in one place.

The table models size their columns from these, the request schemas validate new input against them, and
the MongoDB migration reads them to decide what legacy data must be altered (a column limit) and what is
kept whole but reported (a limit that only guards new input through the API).
"""

from __future__ import annotations

# Column limits: the database refuses longer values, so legacy data is altered to fit.
EMAIL_MAX = 320  # RFC 5321: 64 for the local part + 1 + 255 for the domain
FULL_NAME_MAX = 200
TITLE_MAX = 200
LEGACY_ID_MAX = 96

# Input limits: enforced on what clients send to the API; the columns themselves take more.
DESCRIPTION_MAX = 10_000
TAG_MAX = 50
TAGS_MAX = 20
PASSWORD_MIN = 8
PASSWORD_MAX = 256
# Date-time text: 2030-01-31T17:00:00.123456+05:30 has 32 characters; twice that leaves room for any spelling
# pydantic takes.
DATETIME_TEXT_MAX = 64
# A list cursor: the longest encode_cursor writes, for a title of TITLE_MAX control characters (6 bytes of
# JSON each), has ~1,700.
CURSOR_MAX = 2048
OAUTH_FIELD_MAX = 256  # the OAuth2 login form's fields the API ignores (scope, client_id, client_secret)
ID_MIN, ID_MAX = 1, 2**63 - 1  # ids are BIGINT identities
TAG_FILTERS_MAX = TAGS_MAX  # tags one list request may require: no task carries more
PAGE_SIZE_MAX = 100

# Secrets and password hashes.
TOKEN_MAX = 4096  # an access or refresh token's length, checked before it is decoded
JWT_SECRET_MIN = 32
BCRYPT_ROUNDS_MIN = 4  # bcrypt's own floor
BCRYPT_ROUNDS_LIMIT = 16  # ~4 s of CPU per verification: no configuration may ask more
BCRYPT_MAX_ROUNDS_DEFAULT = 14  # the costliest stored hash verified by default (~1 s); the migration's bound too
