"""volumes: CreateImage's durable intent (image_captures)

Revision ID: s002
Revises: s001
Create Date: 2026-12-05 08:55:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "s002"
down_revision = "s001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_captures",
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("restart", sa.Boolean(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image_captures")),
    )
    with op.batch_alter_table("image_captures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_image_captures_instance_id"), ["instance_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("image_captures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_captures_instance_id"))
    op.drop_table("image_captures")
