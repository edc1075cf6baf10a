"""tags: each account's own tags on a resource (an image shared with another account
carries that account's tags, never the owner's)

Revision ID: t001
Revises: 0001
Create Date: 2026-12-05 17:30:00
"""

from alembic import op

revision = "t001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.drop_constraint("pk_tags", type_="primary")
        batch_op.create_primary_key("pk_tags", ["resource_id", "account_id", "key"])


def downgrade() -> None:
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.drop_constraint("pk_tags", type_="primary")
        batch_op.create_primary_key("pk_tags", ["resource_id", "key"])
