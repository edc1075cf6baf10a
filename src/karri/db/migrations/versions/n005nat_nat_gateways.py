"""NAT gateways, and routes to them

Revision ID: n005nat
Revises: n004
Create Date: 2026-12-06 02:40:00
"""

import sqlalchemy as sa
from alembic import op

from karri.db.base import UTCDateTime

revision = "n005nat"
down_revision = "n004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nat_gateways",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("subnet_id", sa.String(length=32), nullable=False),
        sa.Column("connectivity_type", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("allocation_id", sa.String(length=32), nullable=True),
        sa.Column("public_ip", sa.String(length=15), nullable=True),
        sa.Column("association_id", sa.String(length=32), nullable=True),
        sa.Column("network_interface_id", sa.String(length=32), nullable=True),
        sa.Column("private_ip", sa.String(length=15), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=255), nullable=True),
        sa.Column("client_token", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("account_id", "vpc_id", "subnet_id"):
        op.create_index(f"ix_nat_gateways_{column}", "nat_gateways", [column])
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nat_gateway_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_routes_nat_gateway_id", ["nat_gateway_id"])


def downgrade() -> None:
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_index("ix_routes_nat_gateway_id")
        batch_op.drop_column("nat_gateway_id")
    op.drop_table("nat_gateways")
