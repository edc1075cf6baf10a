"""walrus: bucket configurations (policy, CORS, lifecycle, ...) in one JSON column

Revision ID: w004
Revises: w003
Create Date: 2026-12-06 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "w004"
down_revision = "w003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("buckets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("configs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("buckets", schema=None) as batch_op:
        batch_op.drop_column("configs")
