"""Auth's tables.

``metadata`` lives in auth's own database (signing keys, revocations, outbox).
``realm_metadata`` lives in each realm's database (organizer, participant): the credentials,
kept beside the users they belong to so a user and its credential commit together.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Integer, MetaData, String, Table, Text

from aidpost.core.db import UTCDateTime
from aidpost.core.outbox import inbox_table, outbox_table

metadata = MetaData()

signing_keys = Table(
    "auth_signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    # A retired key still verifies tokens until every token it signed has expired.
    Column("retired_at", UTCDateTime(), nullable=True),
)

revocations = Table(
    "auth_revocations",
    metadata,
    Column("realm", String(20), primary_key=True),
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("not_before_ms", BigInteger, nullable=False),
)

# Single-use links to set a password: "reset" (asked for by the user) or "setup" (a staff
# account created by someone else). Only a hash of the token is kept.
password_tokens = Table(
    "auth_password_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("realm", String(20), nullable=False),
    Column("user_id", Integer, nullable=False, index=True),
    Column("purpose", String(10), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

realm_metadata = MetaData()

credentials = Table(
    "auth_credentials",
    realm_metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("time_sign_out", UTCDateTime(), nullable=True),
)
