"""walrus: a version's legal hold may be unset (NULL: never applied, as S3 tells apart
from OFF: GetObjectLegalHold's NoSuchObjectLockConfiguration, no header on GET/HEAD)

Before this, false stood for both; it becomes NULL (almost always: never applied).

Revision ID: w009hold
Revises: w005upload
Create Date: 2026-12-06 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "w009hold"
down_revision = "w005upload"
branch_labels = None
depends_on = None

TABLES = ("objects", "multipart_uploads")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "legal_hold", existing_type=sa.Boolean(), nullable=True, server_default=None
            )
        op.execute(sa.text(f"UPDATE {table} SET legal_hold = NULL WHERE NOT legal_hold"))


def downgrade() -> None:
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET legal_hold = false WHERE legal_hold IS NULL"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "legal_hold", existing_type=sa.Boolean(), nullable=False, server_default=sa.false()
            )
