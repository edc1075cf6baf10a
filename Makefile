# The two commands: `make up` runs the cloud, `make test` runs every test.
# Both install whatever is missing first (Debian packages, .venv).
VENV := .venv
ARGS ?=

.PHONY: up test deps lint unit bench

up: deps
	$(VENV)/bin/karri up $(ARGS)

test: deps lint
	$(VENV)/bin/pytest -n 2 --dist loadfile $(ARGS)

deps:
	./scripts/install-deps.sh

lint: deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

unit: deps
	$(VENV)/bin/pytest tests/unit $(ARGS)

bench: deps
	$(VENV)/bin/python bench/ec2_api.py
