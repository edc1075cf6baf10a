"""snapshots: the snapshot an incremental export's object is a diff of (base_snapshot_id)

Revision ID: s005
Revises: s004
Create Date: 2026-12-06 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "s005"
down_revision = "s004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("base_snapshot_id", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_snapshots_base_snapshot_id"), ["base_snapshot_id"])


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_index(batch.f("ix_snapshots_base_snapshot_id"))
        batch.drop_column("base_snapshot_id")
