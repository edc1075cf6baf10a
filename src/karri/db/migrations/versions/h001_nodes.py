"""nodes: joined nodes and their one-time join tokens

Revision ID: h001
Revises: 0001
Create Date: 2026-12-06 02:20:00
"""

import sqlalchemy as sa
from alembic import op

from karri.db.base import UTCDateTime

revision = "h001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False, unique=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=True),
        sa.Column("interval", sa.Float(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
    )
    op.create_table(
        "node_join_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_by", sa.String(63), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("node_join_tokens")
    op.drop_table("nodes")
