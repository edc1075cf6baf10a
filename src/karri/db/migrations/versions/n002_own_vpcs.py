"""network: the parts of default VPCs their accounts deleted (DeleteVpc, DeleteSubnet);
routes to a network interface or instance; secondary IPv4 ranges of VPCs

Revision ID: n002
Revises: n001
Create Date: 2026-12-05 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n002"
down_revision = "n001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "default_part_deletions",
        sa.Column("resource_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_default_part_deletions_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_default_part_deletions")),
    )
    op.create_index(
        op.f("ix_default_part_deletions_account_id"),
        "default_part_deletions",
        ["account_id"],
        unique=False,
    )
    op.create_table(
        "vpc_cidr_blocks",
        sa.Column("association_id", sa.String(length=64), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("cidr_block", sa.String(length=18), nullable=False),
        sa.ForeignKeyConstraint(
            ["vpc_id"], ["vpcs.id"], name=op.f("fk_vpc_cidr_blocks_vpc_id_vpcs")
        ),
        sa.PrimaryKeyConstraint("association_id", name=op.f("pk_vpc_cidr_blocks")),
    )
    op.create_index(op.f("ix_vpc_cidr_blocks_vpc_id"), "vpc_cidr_blocks", ["vpc_id"], unique=False)
    with op.batch_alter_table("routes") as batch:
        batch.add_column(sa.Column("network_interface_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("instance_id", sa.String(length=32), nullable=True))
        batch.create_index(
            batch.f("ix_routes_network_interface_id"), ["network_interface_id"], unique=False
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_vpc_cidr_blocks_vpc_id"), table_name="vpc_cidr_blocks")
    op.drop_table("vpc_cidr_blocks")
    with op.batch_alter_table("routes") as batch:
        batch.drop_index(batch.f("ix_routes_network_interface_id"))
        batch.drop_column("instance_id")
        batch.drop_column("network_interface_id")
    op.drop_index(op.f("ix_default_part_deletions_account_id"), table_name="default_part_deletions")
    op.drop_table("default_part_deletions")
