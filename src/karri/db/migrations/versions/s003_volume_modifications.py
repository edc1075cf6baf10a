"""volumes: ModifyVolume's modifications (volume_modifications)

Revision ID: s003
Revises: s002
Create Date: 2026-12-05 17:50:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "s003"
down_revision = "s002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volume_modifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("volume_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.String(length=255), nullable=True),
        sa.Column("original_size", sa.Integer(), nullable=False),
        sa.Column("original_type", sa.String(length=16), nullable=False),
        sa.Column("original_iops", sa.Integer(), nullable=True),
        sa.Column("original_throughput", sa.Integer(), nullable=True),
        sa.Column("target_size", sa.Integer(), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_iops", sa.Integer(), nullable=True),
        sa.Column("target_throughput", sa.Integer(), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("start_time", karri.db.base.UTCDateTime(), nullable=False),
        sa.Column("end_time", karri.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["volume_id"],
            ["volumes.id"],
            name=op.f("fk_volume_modifications_volume_id_volumes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_modifications")),
    )
    with op.batch_alter_table("volume_modifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_volume_modifications_volume_id"), ["volume_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_volume_modifications_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("volume_modifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_volume_modifications_state"))
        batch_op.drop_index(batch_op.f("ix_volume_modifications_volume_id"))
    op.drop_table("volume_modifications")
