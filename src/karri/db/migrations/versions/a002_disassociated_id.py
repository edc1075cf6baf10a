"""elastic IPs: the association id a DisassociateAddress ended

A repeated DisassociateAddress of that association succeeds again (AWS: "an idempotent
operation") until the address is associated anew.

Revision ID: a002
Revises: a001
Create Date: 2026-12-13 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "a002"
down_revision = "a001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("elastic_ips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disassociated_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_elastic_ips_disassociated_id"), ["disassociated_id"])


def downgrade() -> None:
    with op.batch_alter_table("elastic_ips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_elastic_ips_disassociated_id"))
        batch_op.drop_column("disassociated_id")
