"""VPCs: the public pool address their instances without one go out as

With ``--public-interface`` the cloud gives each VPC with instances one address of the
pool for outbound masquerade (never an elastic IP's or an instance's).

Revision ID: n004
Revises: n003acl
Create Date: 2026-12-05 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n004"
down_revision = "n003acl"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vpcs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("masquerade_ip", sa.String(length=15), nullable=True))
        batch_op.create_unique_constraint("uq_vpcs_masquerade_ip", ["masquerade_ip"])


def downgrade() -> None:
    with op.batch_alter_table("vpcs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_vpcs_masquerade_ip", type_="unique")
        batch_op.drop_column("masquerade_ip")
