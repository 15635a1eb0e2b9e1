"""The participant database. Participants' data lives here only, never beside organizers'."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aidpost.core.db import NAMING_CONVENTION, UTCDateTime
from aidpost.core.outbox import inbox_table, outbox_table

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    phoneNumber: Mapped[str] = mapped_column("phone_number", String(30))
    timeCreated: Mapped[dt.datetime] = mapped_column("time_created", UTCDateTime())
    timeSignOut: Mapped[dt.datetime] = mapped_column("time_sign_out", UTCDateTime())


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
