"""Imports every component's models so that Base.metadata knows all tables."""

from karri.db import models  # noqa: F401
