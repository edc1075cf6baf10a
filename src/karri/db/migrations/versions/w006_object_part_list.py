"""walrus: a multipart object's parts (size and checksums), kept with its version

Revision ID: w005parts
Revises: w005lock
Create Date: 2026-12-06 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "w005parts"
down_revision = "w005lock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("part_list", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_column("part_list")
