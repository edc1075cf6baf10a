"""volumes: encryption at rest (ebs_encryption, volumes.encrypted, snapshots.encrypted)

Revision ID: s004
Revises: s003
Create Date: 2026-12-05 21:00:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "s004"
down_revision = "s003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ebs_encryption",
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("by_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_ebs_encryption_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_ebs_encryption")),
    )
    for table in ("volumes", "snapshots"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("encrypted", sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    for table in ("snapshots", "volumes"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("encrypted")
    op.drop_table("ebs_encryption")
