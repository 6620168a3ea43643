"""An error as one line: the same words on the command line and in the exporter."""

from __future__ import annotations

import pymysql
import sqlalchemy.exc

from queuetool.errors import one_line, reported_errors
from queuetool.exporter.figures import describe


def test_a_closed_connection_with_no_message_is_still_one_line():
    # PyMySQL's error for a connection already closed carries (0, ""): no text at all.
    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(0, ""))
    assert one_line(lost) == "database error: OperationalError"
    assert one_line(pymysql.err.OperationalError(0, "")) == "database error: OperationalError"


def test_a_password_in_an_error_that_is_not_the_drivers_is_masked():
    bad = sqlalchemy.exc.ArgumentError(
        "Could not parse SQLAlchemy URL from string 'mysql+pymysql://gearman:s3cret@db1/q'"
    )
    line = one_line(bad)
    assert "s3cret" not in line and line.startswith("database error: Could not parse")
    assert describe(bad) == line  # the exporter's words are the command line's


def test_every_loaded_driver_error_is_reported_not_raised():
    import psycopg

    assert {pymysql.err.Error, psycopg.Error} <= set(reported_errors())
