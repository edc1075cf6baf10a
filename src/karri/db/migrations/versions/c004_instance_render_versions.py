"""instances.version: bumped by triggers whenever anything DescribeInstances shows changes

A front end keeps each instance's rendered XML keyed by (instance id, version)
(``api/ec2/instance_fragments.py``); it is exact only if every write to what the answer
shows bumps the version in the same transaction. Triggers do it, so no service can forget:

- ``instances``: any UPDATE of the row (SQLite: an AFTER trigger that adds one unless the
  statement set the version itself; PostgreSQL: a BEFORE trigger, the same);
- each table below, on INSERT, UPDATE and DELETE, for the instance(s) its old and new row
  point at: ``tags`` (resource_id), ``network_interfaces`` (instance_id),
  ``network_interface_addresses`` (through their interface), ``elastic_ips``
  (instance_id), ``volume_attachments`` (instance_id: the BlockDeviceMappings),
  ``instance_profile_associations`` (instance_id), ``reservations`` (its instances: the
  ClientToken, OwnerId);
- ``vpcs``: an UPDATE of ``enable_dns_hostnames`` bumps every instance of the VPC (their
  PublicDnsName).

SQLite drops a table's triggers when a batch migration rebuilds the table (a later
migration that does must create them again): ``tests/integration/test_ec2_instance_versions.py``
checks each of them at every branch's head.

Revision ID: c004_instance_render_versions
Revises: c003
Create Date: 2026-12-07 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c004_instance_render_versions"
down_revision = "c003"
branch_labels = None
# the heads that last made or rebuilt the tables the triggers sit on
depends_on = ("t001", "n006eni", "a002", "s005", "e002", "nodes5_instance_node")

BUMP = "UPDATE instances SET version = version + 1 WHERE "

# table: the instances a row of it concerns, as a condition on ``instances`` ({r}: the row)
INPUTS = {
    "tags": "id = {r}.resource_id",
    "network_interfaces": "id = {r}.instance_id",
    "network_interface_addresses": (
        "id = (SELECT instance_id FROM network_interfaces WHERE id = {r}.network_interface_id)"
    ),
    "elastic_ips": "id = {r}.instance_id",
    "volume_attachments": "id = {r}.instance_id",
    "instance_profile_associations": "id = {r}.instance_id",
    "reservations": "reservation_id = {r}.id",
}
ROWS = {"INSERT": ("NEW",), "UPDATE": ("NEW", "OLD"), "DELETE": ("OLD",)}
VPC_CONDITION = "vpc_id = NEW.id"


def _sqlite_statements() -> list[str]:
    statements = [
        "CREATE TRIGGER instance_version_self AFTER UPDATE ON instances FOR EACH ROW "
        "WHEN NEW.version = OLD.version "
        f"BEGIN {BUMP}id = NEW.id; END"
    ]
    for table, condition in INPUTS.items():
        for event, rows in ROWS.items():
            where = " OR ".join(f"({condition.format(r=r)})" for r in rows)
            statements.append(
                f"CREATE TRIGGER instance_version_{table}_{event.lower()} "
                f"AFTER {event} ON {table} FOR EACH ROW BEGIN {BUMP}{where}; END"
            )
    statements.append(
        "CREATE TRIGGER instance_version_vpcs_update AFTER UPDATE OF enable_dns_hostnames "
        "ON vpcs FOR EACH ROW WHEN OLD.enable_dns_hostnames IS NOT NEW.enable_dns_hostnames "
        f"BEGIN {BUMP}{VPC_CONDITION}; END"
    )
    return statements


def _sqlite_triggers() -> list[str]:
    names = ["instance_version_self", "instance_version_vpcs_update"]
    names += [f"instance_version_{t}_{e.lower()}" for t in INPUTS for e in ROWS]
    return names


def _function(name: str, body: str) -> str:
    return f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$"


def _postgresql_statements() -> list[str]:
    statements = [
        _function(
            "instance_version_self",
            "IF NEW.version = OLD.version THEN NEW.version := OLD.version + 1; END IF; RETURN NEW;",
        ),
        "CREATE TRIGGER instance_version_self BEFORE UPDATE ON instances FOR EACH ROW "
        "EXECUTE FUNCTION instance_version_self()",
    ]
    for table, condition in INPUTS.items():
        name = f"instance_version_{table}"
        body = (
            f"IF TG_OP <> 'DELETE' THEN {BUMP}{condition.format(r='NEW')}; END IF; "
            f"IF TG_OP <> 'INSERT' THEN {BUMP}{condition.format(r='OLD')}; END IF; "
            "RETURN NULL;"
        )
        statements.append(_function(name, body))
        statements.append(
            f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
    statements.append(_function("instance_version_vpcs", f"{BUMP}{VPC_CONDITION}; RETURN NULL;"))
    statements.append(
        "CREATE TRIGGER instance_version_vpcs AFTER UPDATE OF enable_dns_hostnames ON vpcs "
        "FOR EACH ROW WHEN (OLD.enable_dns_hostnames IS DISTINCT FROM NEW.enable_dns_hostnames) "
        "EXECUTE FUNCTION instance_version_vpcs()"
    )
    return statements


def _postgresql_tables() -> dict[str, str]:
    """Each PostgreSQL trigger (and its function's name) with its table."""
    return {"instance_version_self": "instances", "instance_version_vpcs": "vpcs"} | {
        f"instance_version_{t}": t for t in INPUTS
    }


def upgrade() -> None:
    op.add_column(
        "instances", sa.Column("version", sa.Integer(), nullable=False, server_default="0")
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        statements = _sqlite_statements()
    elif dialect == "postgresql":
        statements = _postgresql_statements()
    else:
        raise NotImplementedError(f"instance version triggers for {dialect}")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name, table in _postgresql_tables().items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("version")
