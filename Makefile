# The two commands: `make up` runs the cloud, `make test` runs every test.
# Both install whatever is missing first (Debian packages, .venv).
VENV := .venv
ARGS ?=

# The integration files that boot no guests, run again with the clouds on PostgreSQL (the
# crash files: a controller SIGKILLed and restarted on PostgreSQL loses nothing).
PG_TESTS := $(wildcard tests/integration/test_ec2_*.py tests/integration/test_iam*.py) \
	tests/integration/test_sts.py tests/integration/test_authorization.py \
	tests/integration/test_s3_access.py tests/integration/test_s3_boto3.py \
	tests/integration/test_s3_clients.py tests/integration/test_s3_errors.py \
	tests/integration/test_s3_processes.py tests/integration/test_ebs_volumes.py \
	tests/integration/test_vpcs.py tests/integration/test_network_acls.py \
	tests/integration/test_dhcp_options.py tests/integration/test_addresses.py \
	tests/integration/test_instance_profiles.py tests/integration/test_cli_accounts.py \
	tests/integration/test_bucket_policies.py tests/integration/test_s3_object_lock.py \
	tests/integration/test_s3_lifecycle.py tests/integration/test_s3_cors.py \
	tests/integration/test_s3_parity.py tests/integration/test_nat_gateways.py \
	tests/integration/test_node_transport.py tests/integration/test_image_refs.py \
	tests/integration/test_public_access_block.py tests/integration/test_s3_conditional_writes.py \
	tests/integration/test_nodes_placement.py tests/integration/test_nodes_failover.py \
	tests/integration/test_ebs_crash.py tests/integration/test_images_restart.py \
	tests/integration/test_front_ends.py \
	tests/integration/test_nodes_hosts.py tests/integration/test_nodes_identity.py

# EBS on Ceph RBD, guest-free: run in the RADOS pass only (a throwaway Ceph cluster each).
RBD_TESTS := tests/integration/test_rbd_storage.py tests/integration/test_ebs_rbd.py \
	tests/integration/test_ebs_rbd_launch.py

# Every guest-free file that needs a Ceph cluster whatever the pass (`karri storage migrate`
# moves object bytes between files and RADOS): the RADOS pass only.
CEPH_TESTS := $(RBD_TESTS) tests/integration/test_storage_migrate.py \
	tests/integration/test_ebs_migrate.py

# The S3 files run again with object bytes in RADOS (a throwaway Ceph cluster per worker),
# and the files that need Ceph anyway.
RADOS_TESTS := tests/integration/test_s3_boto3.py tests/integration/test_s3_clients.py \
	tests/integration/test_s3_object_attributes.py $(CEPH_TESTS)

.PHONY: up test test-postgresql test-rados deps lint unit bench node

up: deps
	$(VENV)/bin/karri up $(ARGS)

# On another host: join the cloud (a token from `karri node token` on the cloud's host).
node: deps
	$(VENV)/bin/karri node --cloud $(CLOUD) --token $(TOKEN) $(ARGS)

# Every test on SQLite (but the Ceph files), then the guest-free integration files again on
# PostgreSQL, then the S3 ones with object bytes in RADOS and the Ceph ones.
test: deps lint
	$(VENV)/bin/pytest -n 2 --dist loadfile $(addprefix --ignore=,$(CEPH_TESTS)) $(ARGS)
	KARRI_TEST_DB=postgresql $(VENV)/bin/pytest -n 2 --dist loadfile $(PG_TESTS)
	KARRI_TEST_WALRUS=rados $(VENV)/bin/pytest -n 2 --dist loadfile $(RADOS_TESTS)

test-rados: deps
	KARRI_TEST_WALRUS=rados $(VENV)/bin/pytest -n 2 --dist loadfile $(RADOS_TESTS) $(ARGS)

test-postgresql: deps
	KARRI_TEST_DB=postgresql $(VENV)/bin/pytest -n 2 --dist loadfile $(PG_TESTS) $(ARGS)

deps:
	./scripts/install-deps.sh

lint: deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

unit: deps
	$(VENV)/bin/pytest tests/unit $(ARGS)

bench: deps
	$(VENV)/bin/python bench/ec2_api.py
