"""drop messages' chat_id index

Revision ID: 7b1e0c5d2a91
Revises: cae06f31b399
Create Date: 2026-12-04 19:20:00

``ix_messages_chat_id`` repeats the first column of ``uq_messages_chat_seq`` (chat_id,
seq), which serves every lookup by chat (and the cascade from chats) as well, in seq
order; each stored message paid for one more index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7b1e0c5d2a91"
down_revision: str | None = "cae06f31b399"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_chat_id")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_chat_id", ["chat_id"], unique=False)
