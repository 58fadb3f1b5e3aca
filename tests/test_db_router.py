"""Reports read from the replica when one is configured, and from the primary otherwise (config/db_router.py)."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from budgets import reports
from config.db_router import REPLICA, ReportReplicaRouter, replica_reads


def report_queries(settings, on: bool) -> tuple[int, int]:
    """(queries on the primary, queries on the replica) while the quarterly return and recharges are made."""
    settings.REPORTS_READ_FROM_REPLICA = on
    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(connections[REPLICA]) as copy:
        reports.phb_return("2026-Q3")
        reports.recharges("2026-Q3")
    return len(primary), len(copy)


@pytest.mark.django_db(databases=["default", REPLICA])
def test_with_a_replica_report_reads_go_to_it_and_nothing_else_does(settings):
    primary, replica = report_queries(settings, on=True)
    assert replica > 0 and primary == 0
    router = ReportReplicaRouter()
    assert router.db_for_read(None) is None  # outside a report: the primary
    with replica_reads():
        assert router.db_for_read(None) == REPLICA
        assert router.db_for_write(None) is None  # writes never go to a replica
    assert router.allow_migrate(REPLICA, "budgets") is False and router.allow_migrate("default", "budgets") is None


@pytest.mark.django_db(databases=["default", REPLICA])
def test_without_a_replica_reports_read_the_primary(settings):
    primary, replica = report_queries(settings, on=False)
    assert primary > 0 and replica == 0
