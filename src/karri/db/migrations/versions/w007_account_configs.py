"""walrus: account-wide S3 settings (the account's public access block)

Revision ID: w005pab
Revises: w005parts
Create Date: 2026-12-06 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "w005pab"
down_revision = "w005parts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "walrus_account_configs",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("configs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("account"),
    )


def downgrade() -> None:
    op.drop_table("walrus_account_configs")
