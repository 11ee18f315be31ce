"""Analytics API latency: through the local server against the emulator, and the handler alone.

Fills tables on the emulator (``AWS_ENDPOINT_URL`` if it answers, else one started
here) with one day of readings at one per minute for 5 devices, one of them going
hot (so there are anomalies), through the real processor. Then times, over HTTP with
a kept-alive connection to ``iotpm api serve``'s server:

- ``GET /devices/{id}/readings?resolution=1m`` for that day (1,440 buckets),
- ``GET /anomalies``;

and the handler's own time per request without I/O (the same routes over the
in-memory read side, each answer computed once and replayed: routing, validation,
shaping and serialisation only), next to the floor of Powertools' resolver itself (a route that
returns a constant) measured in the same run. Prints figures, then one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from iotpm.adapters.dynamodb import TableNames, create_tables
from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.api.server import ApiServer, proxy_event
from iotpm.composition import TableSettings, build_queries
from iotpm.emulator import control
from iotpm.handlers.api import ApiHandler
from iotpm.service import Processor
from iotpm.service import memory as m
from iotpm.service.samples import batch

DAY_MS = 86_400_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % DAY_MS
NOW = T0 + DAY_MS
KEY = "bench"


class Recorded:
    """The read side with every answer computed once: the handler's own cost, no store at all."""

    def __init__(self, inner: MemoryQueries) -> None:
        self.inner = inner
        self.memo: dict[tuple[Any, ...], Any] = {}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.inner, name)

        def call(*args: Any) -> Any:
            key = (name, *args)
            if key not in self.memo:
                self.memo[key] = method(*args)
            return self.memo[key]

        return call


def fill(p: Processor, devices: int) -> None:
    step = 120  # readings per batch per device (2 hours at one per minute)
    for i in range(1440 // step):
        seq = i * step
        # each batch at the end of its two hours: write-behind compacts as it goes, the last batch in the log
        out = p(batch(devices, step, start_ms=T0, first_seq=seq, interval_ms=60_000, faulty=[2], fault_from=900),
                now_ms=min(NOW, T0 + (seq + step) * 60_000))  # fmt: skip
        assert not out.errors, out.errors[:3]


def percentiles(times: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(times, n=100)
    return {"p50_ms": round(statistics.median(times) * 1000, 3), "p99_ms": round(qs[98] * 1000, 3)}


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=200, help="handler-only repetitions")
    parser.add_argument("--http-reps", type=int, default=20, help="HTTP repetitions (moto answers a day in ~4 s)")
    parser.add_argument("--devices", type=int, default=5)
    parser.add_argument("--write-through", action="store_true", help="fill without write-behind (no log, no snapshots)")
    args = parser.parse_args()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)
    started = None
    if not control.answering(os.environ.get("AWS_ENDPOINT_URL", "")):
        started = control.free_port()
        os.environ["AWS_ENDPOINT_URL"] = control.start(started).url
    try:
        run(args)
    finally:
        if started:
            control.stop(started)


def run(args: argparse.Namespace) -> None:
    import boto3

    from iotpm.composition import Settings, build_processor

    tag = uuid.uuid4().hex[:8]
    names = TableNames(f"b{tag}-readings", f"b{tag}-devices", f"b{tag}-anomalies", f"b{tag}-rollups")
    ddb = boto3.client("dynamodb")
    create_tables(ddb, names)
    s3, sns = boto3.client("s3"), boto3.client("sns")
    s3.create_bucket(Bucket=f"bench-{tag}")
    s3.create_bucket(Bucket=f"bench-{tag}-state")
    topic = sns.create_topic(Name=f"bench-{tag}")["TopicArn"]
    settings = Settings(readings_table=names.readings, devices_table=names.devices, anomalies_table=names.anomalies,
                        rollups_table=names.rollups, archive_bucket=f"bench-{tag}", alerts_topic_arn=topic,
                        state_bucket="" if args.write_through else f"bench-{tag}-state")  # fmt: skip
    t = time.perf_counter()
    fill(build_processor(settings), args.devices)
    mode = "written through" if args.write_through else "write-behind, the last two hours in the log"
    print(f"filled {args.devices} devices x 1,440 readings through the processor ({mode}) "
          f"in {time.perf_counter() - t:.1f} s")  # fmt: skip

    st, rd, an, ro = m.MemoryStates(), m.MemoryReadings(), m.MemoryAnomalies(), m.MemoryRollups()
    sinks = {"archive": m.MemoryArchive(), "alerts": m.MemoryAlerts()}
    fill(Processor(states=st, readings=rd, anomalies=an, rollups=ro, **sinks), args.devices)

    day = "from=" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 / 1000))
    day += "&to=" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW / 1000))
    routes = {
        "readings_1m_day": f"/devices/dev-0002/readings?resolution=1m&limit=2000&{day}",
        "anomalies": "/anomalies?since=" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 / 1000)),
    }
    table_settings = TableSettings(**settings.model_dump(include={"readings_table", "devices_table",
                                                                   "anomalies_table", "rollups_table"}))  # fmt: skip
    server = ApiServer(ApiHandler(lambda: build_queries(table_settings)), KEY).start()
    result: dict[str, Any] = {}
    try:
        conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)

        def call(target: str) -> None:
            conn.request("GET", target, headers={"x-api-key": KEY})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:300]

        for name, target in routes.items():
            result[f"http_{name}"] = percentiles(timed(lambda target=target: call(target), args.http_reps))
        conn.request("GET", routes["readings_1m_day"], headers={"x-api-key": KEY})
        buckets = len(json.loads(conn.getresponse().read())["items"])
    finally:
        server.stop()

    app = build_app(Recorded(MemoryQueries(st, rd, an, ro)), now_ms=lambda: NOW)  # type: ignore[arg-type]
    floor = APIGatewayRestResolver(enable_validation=True)
    floor.get("/ping")(lambda: {"ok": True})
    for name, target in routes.items():
        event = proxy_event("GET", target, {"x-api-key": KEY}, "127.0.0.1")
        result[f"handler_{name}"] = percentiles(timed(lambda event=event: app.resolve(event, None), args.reps))
    ping = proxy_event("GET", "/ping", {}, "127.0.0.1")
    result["handler_floor_powertools"] = percentiles(timed(lambda: floor.resolve(ping, None), args.reps))
    result["buckets_per_day_response"] = buckets

    for name, figures in result.items():
        if isinstance(figures, dict):
            print(f"{name:32s} p50 {figures['p50_ms']:8.3f} ms   p99 {figures['p99_ms']:8.3f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
