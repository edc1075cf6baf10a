"""walrus: the multipart upload an object version was completed from (retried
completions), and who initiated an upload (ListMultipartUploads' Initiator)

Revision ID: w005upload
Revises: w005pab
Create Date: 2026-12-06 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "w005upload"
down_revision = "w005pab"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("multipart_uploads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("initiator", sa.String(length=256), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("multipart_uploads", schema=None) as batch_op:
        batch_op.drop_column("initiator")
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_column("upload_id")
