"""The named queries on Athena: start, wait, read the rows (the report Lambda's data-quality source)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from iotpm.adapters.errors import aws_call
from iotpm.analytics.queries import named_queries
from iotpm.service.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_athena.client import AthenaClient

_NUMBERS: Final = {"tinyint": int, "smallint": int, "integer": int, "bigint": int, "double": float, "real": float,
                   "float": float, "decimal": float}  # fmt: skip


class AthenaQueries:
    """Runs a named query's SQL in the workgroup (its settings enforced) with execution parameters."""

    def __init__(
        self, client: AthenaClient, workgroup: str, database: str, poll_s: float = 0.5, timeout_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        self.client, self.workgroup, self.database = client, workgroup, database
        self.poll_s, self.timeout_s, self.sleep = poll_s, timeout_s, sleep

    def named(self, name: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of named query ``name`` (a :data:`iotpm.analytics.report.RunQuery`)."""
        sql = named_queries()[name].render()
        args: dict[str, Any] = {
            "QueryString": sql,
            "WorkGroup": self.workgroup,
            "QueryExecutionContext": {"Database": self.database},
        }
        if params:  # Athena substitutes each as a SQL literal
            args["ExecutionParameters"] = [_literal(p) for p in params]
        with aws_call(f"StartQueryExecution {name}"):
            query_id = self.client.start_query_execution(**args)["QueryExecutionId"]
        self._wait(name, query_id)
        return self._rows(query_id)

    def _wait(self, name: str, query_id: str) -> None:
        waited = 0.0
        while True:
            with aws_call(f"GetQueryExecution {name}"):
                status = self.client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return
            if state in {"FAILED", "CANCELLED"}:
                raise StoreError(f"Athena query {name} {state.lower()}: {status.get('StateChangeReason', '')}")
            if waited >= self.timeout_s:
                raise StoreError(f"Athena query {name} still {state} after {self.timeout_s:.0f} s")
            self.sleep(self.poll_s)
            waited += self.poll_s

    def _rows(self, query_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        columns: list[tuple[str, Callable[[str], Any] | None]] = []
        with aws_call("GetQueryResults"):
            pages = list(self.client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id))
        for number, page in enumerate(pages):
            result = page["ResultSet"]
            if not columns:
                meta = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [(c["Name"], _NUMBERS.get(c.get("Type", "varchar"))) for c in meta]
            rows = result.get("Rows", [])
            for row in rows[1:] if number == 0 else rows:  # the first row of the first page is the header
                cells = [d.get("VarCharValue") for d in row.get("Data", [])]
                out.append(
                    {
                        n: (None if v is None else (conv(v) if conv else v))
                        for (n, conv), v in zip(columns, cells, strict=False)
                    }
                )
        return out


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
