"""The database: SQLAlchemy models and Alembic migrations shared by cloud, walrus and storage."""
