"""instances: the node that runs each (NULL: the cloud's own); nodes: their agent's URL

Revision ID: nodes5_instance_node
Revises: h001
Create Date: 2026-12-06 09:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "nodes5_instance_node"
down_revision = "h001"
branch_labels = None
depends_on = "c003"


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node", sa.String(length=63), nullable=True))
        batch_op.create_index(batch_op.f("ix_instances_node"), ["node"], unique=False)
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_url", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("agent_url")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_node"))
        batch_op.drop_column("node")
