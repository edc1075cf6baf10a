"""walrus: Object Lock retention and legal hold of versions (and of multipart uploads)

Revision ID: w005lock
Revises: w004
Create Date: 2026-12-06 02:30:00
"""

import sqlalchemy as sa
from alembic import op

from karri.db.base import UTCDateTime

revision = "w005lock"
down_revision = "w004"
branch_labels = None
depends_on = None

TABLES = ("objects", "multipart_uploads")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("lock_mode", sa.String(length=16), nullable=True))
            batch_op.add_column(sa.Column("lock_until", UTCDateTime(), nullable=True))
            batch_op.add_column(
                sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("legal_hold")
            batch_op.drop_column("lock_until")
            batch_op.drop_column("lock_mode")
