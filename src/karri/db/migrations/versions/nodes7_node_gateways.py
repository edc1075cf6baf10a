"""node_gateways: every front end's node gateway and when it last said it lives

Revision ID: nodes7_node_gateways
Revises: nodes5_instance_node
Create Date: 2026-12-06 22:55:00
"""

import sqlalchemy as sa
from alembic import op

from karri.db.base import UTCDateTime

revision = "nodes7_node_gateways"
down_revision = "nodes5_instance_node"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_gateways",
        sa.Column("url", sa.String(255), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_node_gateways")),
    )


def downgrade() -> None:
    op.drop_table("node_gateways")
