"""IAM instance profile associations

Revision ID: p001
Revises: e001
Create Date: 2026-12-05 21:30:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "p001"
down_revision = "e001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_profile_associations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("profile_name", sa.String(length=128), nullable=False),
        sa.Column("profile_arn", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.Column("ended_at", karri.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_instance_profile_associations_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_profile_associations")),
    )
    with op.batch_alter_table("instance_profile_associations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_instance_profile_associations_account_id"), ["account_id"]
        )
        batch_op.create_index(
            batch_op.f("ix_instance_profile_associations_instance_id"), ["instance_id"]
        )


def downgrade() -> None:
    op.drop_table("instance_profile_associations")
