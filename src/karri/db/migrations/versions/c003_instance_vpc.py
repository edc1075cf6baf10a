"""instances: their VPC and subnet, and whether they get a public address

Rows from before VPCs keep NULL here until `karri up` moves them into their account's
default VPC (the default subnet of their zone), keeping their private address: which
subnet that is depends on the cloud's zones, which a migration does not know.

Revision ID: c003
Revises: c002
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c003"
down_revision = "c002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vpc_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("subnet_id", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("associate_public_ip", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.create_index(batch_op.f("ix_instances_subnet_id"), ["subnet_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_instances_vpc_id"), ["vpc_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_vpc_id"))
        batch_op.drop_index(batch_op.f("ix_instances_subnet_id"))
        batch_op.drop_column("associate_public_ip")
        batch_op.drop_column("subnet_id")
        batch_op.drop_column("vpc_id")
