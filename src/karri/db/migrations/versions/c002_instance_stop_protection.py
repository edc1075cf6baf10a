"""instances: stop protection (disableApiStop) and sourceDestCheck

Revision ID: c002
Revises: c001
Create Date: 2026-12-05 12:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c002"
down_revision = "c001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("disable_api_stop", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("source_dest_check", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("source_dest_check")
        batch_op.drop_column("disable_api_stop")
