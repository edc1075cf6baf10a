"""IAM tags on customer managed policies and instance profiles

Revision ID: e002
Revises: p001
Create Date: 2026-12-05 22:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "e002"
down_revision = "p001"
branch_labels = None
depends_on = None

TABLES = ("iam_policies", "iam_instance_profiles")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("tags", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("tags")
