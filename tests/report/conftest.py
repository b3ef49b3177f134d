"""Report fixtures: the same stores and known workflow as the export tests."""

from tests.export.conftest import (fixture_backend, fixture_export_pg_dsn, fixture_known,  # noqa: F401
                                   fixture_pdftoppm, fixture_store)
