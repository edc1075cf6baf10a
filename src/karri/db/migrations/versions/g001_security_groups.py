"""security groups and their rules

Revision ID: g001
Revises: 0001
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "g001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "security_groups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("vpc_id", "name"),
    )
    with op.batch_alter_table("security_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_security_groups_account_id"), ["account_id"])
        batch_op.create_index(batch_op.f("ix_security_groups_vpc_id"), ["vpc_id"])
    op.create_table(
        "security_group_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("egress", sa.Boolean(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("from_port", sa.Integer(), nullable=False),
        sa.Column("to_port", sa.Integer(), nullable=False),
        sa.Column("cidr_ipv4", sa.String(length=18), nullable=True),
        sa.Column("cidr_ipv6", sa.String(length=43), nullable=True),
        sa.Column("peer_group_id", sa.String(length=32), nullable=True),
        sa.Column("peer_owner_id", sa.String(length=12), nullable=True),
        sa.Column("prefix_list_id", sa.String(length=32), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["group_id"], ["security_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("security_group_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_security_group_rules_seq"), ["seq"])
        batch_op.create_index(batch_op.f("ix_security_group_rules_group_id"), ["group_id"])
        batch_op.create_index(batch_op.f("ix_security_group_rules_account_id"), ["account_id"])
        batch_op.create_index(
            batch_op.f("ix_security_group_rules_peer_group_id"), ["peer_group_id"]
        )


def downgrade() -> None:
    op.drop_table("security_group_rules")
    op.drop_table("security_groups")
