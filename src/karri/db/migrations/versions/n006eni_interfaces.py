"""Network interfaces of their own: their groups, client token, secondary addresses

Revision ID: n006eni
Revises: n005nat
Create Date: 2026-12-06 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n006eni"
down_revision = "n005nat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("network_interfaces") as batch:
        batch.add_column(sa.Column("security_groups", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("client_token", sa.String(length=64), nullable=True))
    op.create_table(
        "network_interface_addresses",
        sa.Column("network_interface_id", sa.String(length=32), nullable=False),
        sa.Column("private_ip", sa.String(length=15), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_interface_id"], ["network_interfaces.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["vpc_id"], ["vpcs.id"]),
        sa.PrimaryKeyConstraint("network_interface_id", "private_ip"),
        sa.UniqueConstraint("vpc_id", "private_ip"),
    )
    op.create_index(
        "ix_network_interface_addresses_vpc_id", "network_interface_addresses", ["vpc_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_network_interface_addresses_vpc_id", "network_interface_addresses")
    op.drop_table("network_interface_addresses")
    with op.batch_alter_table("network_interfaces") as batch:
        batch.drop_column("client_token")
        batch.drop_column("security_groups")
