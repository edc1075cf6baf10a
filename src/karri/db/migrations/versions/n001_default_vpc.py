"""network: VPCs, subnets, internet gateways, route tables, network ACLs, DHCP options,
network interfaces

Revision ID: n001
Revises: 0001
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "n001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dhcp_options",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("configurations", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_dhcp_options_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dhcp_options")),
    )
    op.create_index(
        op.f("ix_dhcp_options_account_id"), "dhcp_options", ["account_id"], unique=False
    )
    op.create_table(
        "vpcs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("cidr_block", sa.String(length=18), nullable=False),
        sa.Column("cidr_association_id", sa.String(length=64), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dhcp_options_id", sa.String(length=32), nullable=True),
        sa.Column("instance_tenancy", sa.String(length=16), nullable=False),
        sa.Column("enable_dns_support", sa.Boolean(), nullable=False),
        sa.Column("enable_dns_hostnames", sa.Boolean(), nullable=False),
        sa.Column("enable_network_address_usage_metrics", sa.Boolean(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_vpcs_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["dhcp_options_id"],
            ["dhcp_options.id"],
            name=op.f("fk_vpcs_dhcp_options_id_dhcp_options"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vpcs")),
    )
    op.create_index(op.f("ix_vpcs_account_id"), "vpcs", ["account_id"], unique=False)
    op.create_table(
        "internet_gateways",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=True),
        sa.Column("attachment_state", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_internet_gateways_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["vpc_id"], ["vpcs.id"], name=op.f("fk_internet_gateways_vpc_id_vpcs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_internet_gateways")),
    )
    op.create_index(
        op.f("ix_internet_gateways_account_id"), "internet_gateways", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_internet_gateways_vpc_id"), "internet_gateways", ["vpc_id"], unique=False
    )
    op.create_table(
        "network_acls",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_network_acls_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["vpc_id"], ["vpcs.id"], name=op.f("fk_network_acls_vpc_id_vpcs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_acls")),
    )
    op.create_index(
        op.f("ix_network_acls_account_id"), "network_acls", ["account_id"], unique=False
    )
    op.create_index(op.f("ix_network_acls_vpc_id"), "network_acls", ["vpc_id"], unique=False)
    op.create_table(
        "route_tables",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_route_tables_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["vpc_id"], ["vpcs.id"], name=op.f("fk_route_tables_vpc_id_vpcs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_tables")),
    )
    op.create_index(
        op.f("ix_route_tables_account_id"), "route_tables", ["account_id"], unique=False
    )
    op.create_index(op.f("ix_route_tables_vpc_id"), "route_tables", ["vpc_id"], unique=False)
    op.create_table(
        "subnets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("cidr_block", sa.String(length=18), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("default_for_az", sa.Boolean(), nullable=False),
        sa.Column("map_public_ip_on_launch", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_subnets_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["vpc_id"], ["vpcs.id"], name=op.f("fk_subnets_vpc_id_vpcs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subnets")),
    )
    op.create_index(op.f("ix_subnets_account_id"), "subnets", ["account_id"], unique=False)
    op.create_index(op.f("ix_subnets_vpc_id"), "subnets", ["vpc_id"], unique=False)
    op.create_table(
        "network_acl_associations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("network_acl_id", sa.String(length=32), nullable=False),
        sa.Column("subnet_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_acl_id"],
            ["network_acls.id"],
            name=op.f("fk_network_acl_associations_network_acl_id_network_acls"),
        ),
        sa.ForeignKeyConstraint(
            ["subnet_id"],
            ["subnets.id"],
            name=op.f("fk_network_acl_associations_subnet_id_subnets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_acl_associations")),
        sa.UniqueConstraint("subnet_id", name=op.f("uq_network_acl_associations_subnet_id")),
    )
    op.create_index(
        op.f("ix_network_acl_associations_network_acl_id"),
        "network_acl_associations",
        ["network_acl_id"],
        unique=False,
    )
    op.create_table(
        "network_acl_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("network_acl_id", sa.String(length=32), nullable=False),
        sa.Column("rule_number", sa.Integer(), nullable=False),
        sa.Column("egress", sa.Boolean(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("rule_action", sa.String(length=8), nullable=False),
        sa.Column("cidr_block", sa.String(length=18), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_acl_id"],
            ["network_acls.id"],
            name=op.f("fk_network_acl_entries_network_acl_id_network_acls"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_acl_entries")),
        sa.UniqueConstraint(
            "network_acl_id",
            "egress",
            "rule_number",
            name=op.f("uq_network_acl_entries_network_acl_id"),
        ),
    )
    op.create_index(
        op.f("ix_network_acl_entries_network_acl_id"),
        "network_acl_entries",
        ["network_acl_id"],
        unique=False,
    )
    op.create_table(
        "network_interfaces",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("vpc_id", sa.String(length=32), nullable=False),
        sa.Column("subnet_id", sa.String(length=32), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("private_ip", sa.String(length=15), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("interface_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_dest_check", sa.Boolean(), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=True),
        sa.Column("attachment_id", sa.String(length=32), nullable=True),
        sa.Column("device_index", sa.Integer(), nullable=True),
        sa.Column("attachment_status", sa.String(length=16), nullable=True),
        sa.Column("attach_time", karri.db.base.UTCDateTime(), nullable=True),
        sa.Column("delete_on_termination", sa.Boolean(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_network_interfaces_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["subnet_id"], ["subnets.id"], name=op.f("fk_network_interfaces_subnet_id_subnets")
        ),
        sa.ForeignKeyConstraint(
            ["vpc_id"], ["vpcs.id"], name=op.f("fk_network_interfaces_vpc_id_vpcs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_interfaces")),
        sa.UniqueConstraint("mac", name=op.f("uq_network_interfaces_mac")),
        sa.UniqueConstraint("vpc_id", "private_ip", name=op.f("uq_network_interfaces_vpc_id")),
    )
    op.create_index(
        op.f("ix_network_interfaces_account_id"), "network_interfaces", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_network_interfaces_instance_id"),
        "network_interfaces",
        ["instance_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_network_interfaces_subnet_id"), "network_interfaces", ["subnet_id"], unique=False
    )
    op.create_index(
        op.f("ix_network_interfaces_vpc_id"), "network_interfaces", ["vpc_id"], unique=False
    )
    op.create_table(
        "route_table_associations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("route_table_id", sa.String(length=32), nullable=False),
        sa.Column("subnet_id", sa.String(length=32), nullable=True),
        sa.Column("main", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["route_table_id"],
            ["route_tables.id"],
            name=op.f("fk_route_table_associations_route_table_id_route_tables"),
        ),
        sa.ForeignKeyConstraint(
            ["subnet_id"],
            ["subnets.id"],
            name=op.f("fk_route_table_associations_subnet_id_subnets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_table_associations")),
        sa.UniqueConstraint("subnet_id", name=op.f("uq_route_table_associations_subnet_id")),
    )
    op.create_index(
        op.f("ix_route_table_associations_route_table_id"),
        "route_table_associations",
        ["route_table_id"],
        unique=False,
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("route_table_id", sa.String(length=32), nullable=False),
        sa.Column("destination_cidr", sa.String(length=18), nullable=False),
        sa.Column("gateway_id", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["route_table_id"],
            ["route_tables.id"],
            name=op.f("fk_routes_route_table_id_route_tables"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint(
            "route_table_id", "destination_cidr", name=op.f("uq_routes_route_table_id")
        ),
    )
    op.create_index(op.f("ix_routes_route_table_id"), "routes", ["route_table_id"], unique=False)


def downgrade() -> None:
    op.drop_table("routes")
    op.drop_table("route_table_associations")
    op.drop_table("network_interfaces")
    op.drop_table("network_acl_entries")
    op.drop_table("network_acl_associations")
    op.drop_table("subnets")
    op.drop_table("route_tables")
    op.drop_table("network_acls")
    op.drop_table("internet_gateways")
    op.drop_table("vpcs")
    op.drop_table("dhcp_options")
