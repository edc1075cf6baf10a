"""elastic IP addresses

Revision ID: a001
Revises: 0001
Create Date: 2026-12-12 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "a001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "elastic_ips",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("public_ip", sa.String(length=15), nullable=False),
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("network_border_group", sa.String(length=64), nullable=False),
        sa.Column("association_id", sa.String(length=32), nullable=True),
        sa.Column("instance_id", sa.String(length=32), nullable=True),
        sa.Column("network_interface_id", sa.String(length=32), nullable=True),
        sa.Column("private_ip", sa.String(length=15), nullable=True),
        sa.Column("allocated_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("association_id"),
        sa.UniqueConstraint("public_ip"),
    )
    with op.batch_alter_table("elastic_ips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_elastic_ips_account_id"), ["account_id"])
        batch_op.create_index(batch_op.f("ix_elastic_ips_instance_id"), ["instance_id"])
        batch_op.create_index(
            batch_op.f("ix_elastic_ips_network_interface_id"), ["network_interface_id"]
        )


def downgrade() -> None:
    op.drop_table("elastic_ips")
