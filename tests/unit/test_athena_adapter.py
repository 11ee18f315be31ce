"""The Athena adapter: a named query's rendered SQL, its parameters as literals, typed rows back."""

from __future__ import annotations

from typing import Any

import pytest

from iotpm.adapters.athena import AthenaQueries
from iotpm.analytics.queries import named_queries
from iotpm.service.errors import StoreError


class FakeAthena:
    def __init__(self, states: list[str], pages: list[dict[str, Any]]) -> None:
        self.states, self.pages = states, pages
        self.started: list[dict[str, Any]] = []

    def start_query_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        return {"QueryExecution": {"Status": {"State": self.states.pop(0), "StateChangeReason": "bad SQL"}}}

    def get_paginator(self, name: str) -> Any:
        pages = self.pages

        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return pages

        return Paginator()


def result(rows: list[list[str | None]], types: list[tuple[str, str]], header: bool) -> dict[str, Any]:
    head: list[list[str | None]] = [[name for name, _ in types]] if header else []
    cells = [{"Data": [{} if v is None else {"VarCharValue": v} for v in r]} for r in head + rows]
    return {
        "ResultSet": {"ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": t} for n, t in types]}, "Rows": cells}
    }


def test_runs_the_rendered_sql_with_literal_parameters_and_types_the_rows() -> None:
    types = [("day", "varchar"), ("reason", "varchar"), ("messages", "bigint"), ("devices", "bigint")]
    fake = FakeAthena(["QUEUED", "RUNNING", "SUCCEEDED"],
                      [result([["2026-12-01", "bad_json", "3", "1"]], types, True),
                       result([["2026-12-01", "no_metrics", "1", None]], types, False)])  # fmt: skip
    rows = AthenaQueries(fake, "wg", "db", sleep=lambda s: None).named("quarantine_reasons", ["2026-12-01", "it's"])
    assert rows == [{"day": "2026-12-01", "reason": "bad_json", "messages": 3, "devices": 1},
                    {"day": "2026-12-01", "reason": "no_metrics", "messages": 1, "devices": None}]  # fmt: skip
    (call,) = fake.started
    assert call["QueryString"] == named_queries()["quarantine_reasons"].render()
    assert call["ExecutionParameters"] == ["'2026-12-01'", "'it''s'"]
    assert call["WorkGroup"] == "wg" and call["QueryExecutionContext"] == {"Database": "db"}


def test_a_failed_query_says_why() -> None:
    fake = FakeAthena(["RUNNING", "FAILED"], [])
    with pytest.raises(StoreError, match="bad SQL"):
        AthenaQueries(fake, "wg", "db", sleep=lambda s: None).named("late_data", ["2026-12-01", "2026-12-01", 60])
    assert fake.started[0]["ExecutionParameters"][2] == "60"
