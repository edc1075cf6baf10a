"""network: a network ACL entry's port range and ICMP type and code

Revision ID: n003acl
Revises: n002
Create Date: 2026-12-05 21:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n003acl"
down_revision = "n002"
branch_labels = None
depends_on = None

COLUMNS = ("port_from", "port_to", "icmp_type", "icmp_code")


def upgrade() -> None:
    with op.batch_alter_table("network_acl_entries") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("network_acl_entries") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
