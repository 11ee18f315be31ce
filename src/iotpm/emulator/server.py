"""Run moto's server with the compatibility fixes the pipeline and Terraform need.

Started by ``iotpm emulator start`` as ``python -m iotpm.emulator.server``. The fixes
(gaps found by running the pipeline and ``terraform apply`` against stock moto):

- Timestream endpoint discovery returns the emulator's own address (botocore and the
  Terraform provider dial whatever DescribeEndpoints returns);
- AWS-managed IAM policies are loaded (roles attach AWSLambdaVPCAccessExecutionRole);
- Lambda never executes code (there is no Docker): event source mappings and
  invokes must not try to start containers; the local twin's poller calls the
  handler in-process instead;
- IoT ``ListTagsForResource``/``TagResource``/``UntagResource`` exist (stock moto
  answers 500, which the provider retries for minutes), and tags given at create
  time are kept for IoT thing types, thing groups, policies and topic rules and for
  Kinesis streams (otherwise ``plan`` after ``apply`` shows a permanent tag diff);
- security group rules keep the description of a prefix-list or group-referencing
  rule (stock moto keeps it for CIDR rules only: another permanent diff);
- IoT ``DescribeEndpoint`` answers the same address every time (stock moto makes a
  new random one per call, so the endpoint output never settles);
- Kinesis shards find their newest record and the records after an iterator in
  constant time per record (stock moto copies or walks the whole shard on every put
  and every GetRecords, so a stream slows down quadratically as it fills: the local
  twin fell to ~100 records/s after a minute at 1,000/s), and a put finds its shard once
  per partition key (stock moto hashes every record's key, and looks up the Lambda backend
  for each mapping of the stream to tell it of the record: nothing, see above);
- Athena ``DeleteNamedQuery`` exists (stock moto has no such action, so destroying
  the analytics module's named queries failed);
- a JSON request body is parsed once per request (stock moto's Kinesis and Timestream
  handlers parse the whole body again for every parameter they read: a PutRecords or
  WriteRecords call was parsed three times, the emulator's largest single cost at the
  twin's 1,000 readings/s);
- Kinesis ``PutRecords`` and ``GetRecords`` answers are written as JSON directly (stock
  moto's generic response serializer spent ~0.1 ms per record looking up each
  field's possible names: a third of the emulator's time at the twin's rate); the
  answers botocore parses from them are the same. Each record's part of a GetRecords
  answer is written once and kept for the records read last (:data:`KINESIS_RECORD_JSON`,
  at most :data:`RECORD_JSON_KEPT`): a poller behind by a backlog reads 10,000 records a
  call, each call re-encoded every record's data, and a retry reads the same records
  again; kept for every record, those answers grew the emulator's memory without bound;
- the per-request costs that do not depend on the request are paid once: stock moto
  lists its own package folder (~150 ``stat`` calls) to route every request and walks
  the handler class with ``inspect`` to find the action; werkzeug's line per request
  is off (``IOTPM_EMULATOR_REQUEST_LOG=1`` brings it back). Together they were a fifth
  of the emulator's cheapest call;
- a DynamoDB ``Query`` of a table's own key reads the one partition it names (stock
  moto lists and sorts every item of the table for every query, so reads slowed down
  as the readings table filled: the twin's log and chunk reads grew with the run);
- a security group rule request that repeats, within a minute, a rule it just created
  (same group, protocol, ports, target, description and tags) is answered with that rule
  instead of ``InvalidPermission.Duplicate``: the provider's SDK retries a request whose
  answer it did not get (a 5xx or a dropped connection), and when the first attempt had
  taken effect stock moto failed the apply (seen once on a bare Debian 12 under load).
  Any other duplicate still fails, as on AWS;
- a request the SDK sends again (the same ``amz-sdk-invocation-id``, a later
  ``amz-sdk-request: attempt=N``) gets the answer its first attempt got, if that attempt
  reached the emulator and was answered below 500 (waiting for it if it is still running):
  the SDKs retry an attempt whose answer they lost (a broken connection: the provider's
  log shows about one such retry per apply, ~0.1 s after the first attempt, with no answer
  logged), and stock moto ran the request twice, so a create met itself (the
  ``InvalidPermission.Duplicate`` above; ``EntityAlreadyExists`` and the like elsewhere).
  Each request then has one effect however often it is sent, as AWS's idempotency tokens
  give;
- an answer's body is searched for an XML ``<RequestId>`` only when it holds one (stock
  moto ran a lookbehind regex over every body: two thirds of a 10,000-record GetRecords);
- connections are kept alive: werkzeug's development server answers every request with
  ``Connection: close``, so every call of every client opened a new TCP connection and the
  emulator started a new thread for it (a tenth of the twin's processor time went to
  connecting, and each closed connection left a socket in TIME_WAIT: at the twin's rates
  tens of thousands a minute). A request with a ``Content-Length`` body over HTTP/1.1 now
  leaves its connection open for the client's next request; anything else (a chunked body,
  HTTP/1.0, a client asking to close) is served as before.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

#: IoT tags by resource ARN (stock moto keeps none)
IOT_TAGS: dict[str, dict[str, str]] = {}

#: How long after a security group rule's creation an identical request counts as a retry of it.
RULE_RETRY_WINDOW_S = 60.0

#: How many calls' answers are kept for their retries, and the largest answer kept.
RETRY_ANSWERS_KEPT = 1024
RETRY_ANSWER_MAX_BYTES = 1 << 20

#: The moto release these patches were written and tested against (pyproject.toml pins it).
TESTED_MOTO = "5.2.5"

#: Every moto internal a fix below replaces or wraps, and the gap in stock moto it works around.
PATCHED: dict[str, str] = {
    "moto.core.config:default_user_config": "Lambda would try to start Docker for every invoke",
    "moto.awslambda.models:LambdaBackend.send_kinesis_message": "Kinesis puts invoke a mapped Lambda (via Docker)",
    "moto.timestreamwrite.responses:TimestreamWriteResponse.describe_endpoints": "endpoint discovery names AWS",
    "moto.iot.responses:IoTResponse.create_thing_type": "IoT create drops the tags sent with it",
    "moto.iot.responses:IoTResponse.create_thing_group": "IoT create drops the tags sent with it",
    "moto.iot.responses:IoTResponse.create_policy": "IoT create drops the tags sent with it",
    "moto.iot.responses:IoTResponse.create_topic_rule": "IoT create drops the tags sent with it",
    "moto.iot.models:IoTBackend.describe_endpoint": "a new random IoT endpoint on every call",
    "moto.iot.models:FakeEndpoint": "a new random IoT endpoint on every call",
    "moto.kinesis.responses:KinesisResponse.create_stream": "CreateStream drops its tags",
    "moto.kinesis.models:Shard.get_records": "GetRecords walks the whole shard (quadratic slow-down)",
    "moto.kinesis.models:Shard.get_max_sequence_number": "every put copies the whole shard",
    "moto.kinesis.models:Shard.get_min_sequence_number": "every put copies the whole shard",
    "moto.kinesis.models:Stream.put_record": "every record hashes its key and looks up the Lambda backend",
    "moto.kinesis.models:Stream.get_shard_for_key": "(called once per partition key and shard layout)",
    "moto.kinesis.models:Shard.put_record": "every record reads the clock as datetimes, twice",
    "moto.kinesis.models:Record": "(made by the put above)",
    "moto.ec2.models.security_groups:SecurityGroupRule.description": "group rule descriptions are dropped",
    "moto.core.responses:ActionResult": "(used to answer the IoT tag calls moto lacks)",
    "moto.core.responses:EmptyResult": "(used to answer the IoT tag calls moto lacks)",
    "moto.core.responses:BaseResponse._get_param": "the JSON body is parsed again for every parameter",
    "moto.kinesis.responses:KinesisResponse.put_records": "the generic serializer is slow per record",
    "moto.kinesis.responses:KinesisResponse.get_records": "the generic serializer is slow per record",
    "moto.core.responses:BaseResponse.serialized": "the generic serializer walks every DynamoDB item's attributes",
    "moto.dynamodb.responses:DynamoResult": "(the item actions' results, written as JSON directly)",
    "moto.backends:list_of_moto_modules": "moto lists its package folder for every request",
    "moto.core.responses:method_names_from_class": "inspect walks the handler class for every request",
    "moto.dynamodb.models.table:Table.query": "a query sorts every item of the table",
    "moto.dynamodb.models.table:Table.all_items": "a query sorts every item of the table",
    "moto.ec2.models.security_groups:SecurityGroupBackend.authorize_security_group_egress": "a retried create "
    "fails as a duplicate of itself",
    "moto.ec2.models.security_groups:SecurityGroupBackend.authorize_security_group_ingress": "a retried create "
    "fails as a duplicate of itself",
    "moto.ec2.exceptions:InvalidPermissionDuplicateError": "(caught to answer a retried rule create)",
    "moto.moto_server.werkzeug_app:DomainDispatcherApplication": "a retried request runs twice (its __call__)",
    "moto.server:MotoRequestHandler": "every connection is closed after one request (no keep-alive)",
    "moto.core.responses:BaseResponse._enrich_response": "a regex scans every answer for an XML RequestId",
}

#: Seconds a kept-alive connection may sit idle before the emulator closes it (clients reconnect).
IDLE_CONNECTION_S = 120.0

#: How many records' GetRecords JSON is kept (the latest written): a full read of every shard
#: of the twin's stream (4 x 10,000) and its retry fit, a long run's records do not.
RECORD_JSON_KEPT = 50_000


class RecentAnswers:
    """Each record's part of a GetRecords answer, for the ``limit`` records written last (thread-safe).

    Keyed by the record object itself (moto's records compare by identity), so a key is
    never another record's however many come and go. An ``OrderedDict``: a plain dict
    finds its oldest key by skipping the slots its earlier deletions left (until it is
    resized), ~20 us a record at 50,000 kept, a fifth of the emulator's time at 5,000 records/s.
    """

    def __init__(self, limit: int = RECORD_JSON_KEPT) -> None:
        import threading
        from collections import OrderedDict

        self.limit = limit
        self._kept: OrderedDict[Any, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, record: Any, write: Callable[[Any], str]) -> str:
        text = self._kept.get(record)
        if text is None:
            text = write(record)
            with self._lock:
                self._kept[record] = text
                while len(self._kept) > self.limit:  # the oldest written go first
                    self._kept.popitem(last=False)
        return text


#: How many partition keys' shards a stream remembers (more, and it starts again).
SHARD_KEYS_KEPT = 100_000

#: The GetRecords JSON of the records read last (:func:`_direct_kinesis_answers`).
KINESIS_RECORD_JSON = RecentAnswers()


def missing_internals() -> list[str]:
    """The patched internals this moto lacks (empty on the tested release)."""
    import importlib

    missing = []
    for target in PATCHED:
        module, _, attrs = target.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for attr in attrs.split("."):
                obj = getattr(obj, attr)
        except (ImportError, AttributeError):
            missing.append(target)
    return missing


def check_moto() -> None:
    """Fail with a message naming what is missing, rather than start an emulator that breaks later."""
    missing = missing_internals()
    if missing:
        from importlib.metadata import version

        raise RuntimeError(
            f"moto {version('moto')} lacks {', '.join(missing)}, which iotpm's emulator patches "
            f"(tested with moto {TESTED_MOTO}; pip install 'moto[server]=={TESTED_MOTO}')"
        )


def apply_fixes(public_url: str) -> None:
    """Patch moto in this process before the server starts."""
    check_moto()
    from moto.core.config import default_user_config
    from moto.timestreamwrite.responses import TimestreamWriteResponse

    default_user_config["lambda"]["use_docker"] = False
    _no_event_source_invokes()

    def describe_endpoints(self: Any) -> str:
        return json.dumps({"Endpoints": [{"Address": public_url, "CachePeriodInMinutes": 1440}]})

    TimestreamWriteResponse.describe_endpoints = describe_endpoints  # type: ignore[method-assign]
    _iot_tags()
    _kinesis_create_tags()
    _security_group_rule_descriptions()
    _stable_iot_endpoint()
    _fast_kinesis_shards()
    _athena_delete_named_query()
    _json_body_parsed_once()
    _direct_kinesis_answers()
    _direct_dynamodb_answers()
    _request_constants_once()
    _dynamodb_partition_queries()
    _rule_create_retries_answered()
    _retried_requests_answered_once()
    _keep_alive_connections()
    _request_id_regex_only_on_xml()


def _request_id_regex_only_on_xml() -> None:
    """``BaseResponse._enrich_response`` as stock moto answers, without scanning answers that hold no RequestId.

    Stock moto runs a lookbehind regex for ``<RequestId>...</RequestId>`` over every
    answer's body: on a 10,000-record GetRecords answer (~3 MB of JSON) that lookbehind
    was two thirds of the call's time. A body without ``<RequestId>`` cannot match, so it
    is passed through unchanged; the headers are enriched as before.
    """
    from moto.core.responses import BaseResponse

    original = BaseResponse._enrich_response

    def enrich(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" not in body:
            headers, _ = original(headers, "")  # the status and the request id header, as stock moto sets them
            return headers, body
        return original(headers, body)

    BaseResponse._enrich_response = staticmethod(enrich)  # type: ignore[method-assign]


def _keep_alive_connections() -> None:
    """Serve with a request handler that keeps HTTP/1.1 connections open between requests.

    Werkzeug closes every connection because, after the answer, it reads whatever the
    client sent that the application did not (so a client sees an error answer rather
    than a reset): on a kept connection that read would swallow the next request. Here
    the body is read whole before the application runs (moto reads bodies whole anyway),
    and that after-answer read is pointed at an empty body and a descriptor that is
    always readable at end of file, so it ends at once and the socket stays at the next
    request's first byte.
    """
    import io

    import moto.server
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    read_end, write_end = os.pipe()
    os.close(write_end)  # the read end is at end of file, readable, for ever

    class _Drained:
        """What werkzeug's after-answer read selects on: nothing more to read."""

        def fileno(self) -> int:
            return read_end

    class KeepAliveRequestHandler(MotoRequestHandler):
        timeout = IDLE_CONNECTION_S
        # werkzeug writes the headers and the body apart: on a kept connection, Nagle's
        # algorithm held the body until the client's delayed ACK of the headers (~40 ms a call)
        disable_nagle_algorithm = True
        _keep = False

        def run_wsgi(self) -> None:
            length = (self.headers.get("Content-Length") or "0").strip()
            expect = self.headers.get("Expect", "").lower().strip(" \t")
            self._keep = (
                self.request_version == "HTTP/1.1"
                and not self.close_connection  # the client did not ask to close
                and length.isdigit()
                and "Transfer-Encoding" not in self.headers
                and expect in ("", "100-continue")
            )
            if not self._keep:
                return super().run_wsgi()
            if expect:  # the client sends the body once told to (werkzeug would tell it after this read)
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                del self.headers["Expect"]
            body = self.rfile.read(int(length))
            stream, connection = self.rfile, self.connection
            self.rfile, self.connection = io.BytesIO(body), _Drained()
            try:
                super().run_wsgi()
            finally:
                self.rfile, self.connection = stream, connection

        def send_header(self, keyword: str, value: str) -> None:
            if self._keep and keyword.lower() == "connection" and value.lower() == "close":
                return  # werkzeug closes every connection; this one stays open
            super().send_header(keyword, value)

    setattr(moto.server, "MotoRequestHandler", KeepAliveRequestHandler)  # noqa: B010 - not exported by moto


def _retried_requests_answered_once() -> None:
    """A retry of a request the emulator already answered gets that answer, not a second effect.

    The AWS SDKs send ``amz-sdk-invocation-id`` (one id for every attempt of a call) and
    ``amz-sdk-request: attempt=N; max=M``. The answer of each attempt (below 500, at most
    :data:`RETRY_ANSWER_MAX_BYTES`) is kept for the :data:`RETRY_ANSWERS_KEPT` latest calls;
    a later attempt of a call whose earlier attempt is still running waits for it. Each
    answer given again is logged (the emulator's log says how often a first attempt's
    answer was lost on the way).
    """
    import logging
    import threading
    from collections import OrderedDict

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__
    answers: OrderedDict[str, tuple[str, list[tuple[str, str]], bytes]] = OrderedDict()
    running: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def answered(call: str, attempt: str) -> tuple[str, list[tuple[str, str]], bytes] | None:
        if attempt.startswith("attempt=1;") or not attempt:
            return None
        with lock:
            first = running.get(call)
        if first is not None:
            first.wait(60)
        with lock:
            return answers.get(call)

    def call_once(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        call, attempt = environ.get("HTTP_AMZ_SDK_INVOCATION_ID"), environ.get("HTTP_AMZ_SDK_REQUEST", "")
        if not call:
            return dispatch(self, environ, start_response)
        if (kept := answered(call, attempt)) is not None:
            logging.getLogger("iotpm.emulator").warning(
                "%s (%s) answered from its first attempt: %s", call, attempt, environ.get("HTTP_X_AMZ_TARGET", "")
            )
            start_response(kept[0], kept[1])
            return [kept[2]]
        done = threading.Event()
        with lock:
            running[call] = done
        status: list[Any] = []

        def capture(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [line, headers]
            return start_response(line, headers, exc_info) if exc_info else start_response(line, headers)

        try:
            chunks = dispatch(self, environ, capture)
            try:
                body = b"".join(chunks)
            finally:
                getattr(chunks, "close", lambda: None)()
            if status and int(status[0].split()[0]) < 500 and len(body) <= RETRY_ANSWER_MAX_BYTES:
                with lock:
                    answers[call] = (status[0], list(status[1]), body)
                    while len(answers) > RETRY_ANSWERS_KEPT:
                        answers.popitem(last=False)
            return [body]
        finally:
            with lock:
                running.pop(call, None)
            done.set()

    DomainDispatcherApplication.__call__ = call_once  # type: ignore[method-assign]


def _rule_create_retries_answered() -> None:
    """AuthorizeSecurityGroupIngress/Egress repeating a rule made moments ago answers that rule.

    The Terraform provider's SDK retries a request when it gets a 5xx or loses the
    connection before the answer; if the first attempt had taken effect, stock moto
    answers the retry ``InvalidPermission.Duplicate`` and the apply fails. A repeat of
    every requested rule (identical: protocol, ports, target, description, tags) within
    :data:`RULE_RETRY_WINDOW_S` of the rule's creation is answered as the first attempt
    would have been, with the rules it made; anything else is a duplicate, as on AWS.
    """
    import inspect
    import time

    from moto.ec2.exceptions import InvalidPermissionDuplicateError
    from moto.ec2.models.security_groups import SecurityGroupBackend, SecurityGroupRule

    made = SecurityGroupRule.__init__

    def stamped(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self._iotpm_created = time.monotonic()

    def retried_rules(backend: Any, egress: bool, args: dict[str, Any]) -> list[Any] | None:
        group = backend.get_security_group_by_name_or_id(args["group_name_or_id"], args.get("vpc_id"))
        ip_ranges = args.get("ip_ranges") or []
        if group is None or not isinstance(ip_ranges, list):
            return None
        wanted = list(backend._iterate_security_rules(
            args["ip_protocol"], group.group_id, args["from_port"], args["to_port"], ip_ranges,
            backend._add_source_group(args.get("source_groups"), args.get("vpc_id")),
            args.get("prefix_list_ids") or [], is_egress=egress, tags={},
        ))  # fmt: skip
        tags = dict(args.get("sgrule_tags") or {})
        now, found = time.monotonic(), []
        for rule in wanted:
            twin = next((r for r in (group.egress_rules if egress else group.ingress_rules) if r == rule), None)
            if (
                twin is None
                or twin.description != rule.description
                or {t["key"]: t["value"] for t in twin.get_tags()} != tags
                or now - getattr(twin, "_iotpm_created", float("-inf")) > RULE_RETRY_WINDOW_S
            ):
                return None
            found.append(twin)
        return found or None

    def answering_retries(original: Callable[..., Any], egress: bool) -> Callable[..., Any]:
        signature = inspect.signature(original)

        def authorize(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            except InvalidPermissionDuplicateError:
                bound = signature.bind(self, *args, **kwargs).arguments
                rules = retried_rules(self, egress, bound)
                if rules is None:
                    raise
                return rules, self.get_security_group_by_name_or_id(bound["group_name_or_id"], bound.get("vpc_id"))

        return authorize

    SecurityGroupRule.__init__ = stamped  # type: ignore[method-assign]
    for name, egress in (("authorize_security_group_egress", True), ("authorize_security_group_ingress", False)):
        setattr(SecurityGroupBackend, name, answering_retries(getattr(SecurityGroupBackend, name), egress))


def _dynamodb_partition_queries() -> None:
    """``Table.query`` as stock moto answers it, reading only the named partition of the table's own key."""
    import inspect
    import threading

    from moto.dynamodb.models.table import Table

    query, every_item = Table.query, Table.all_items
    signature = inspect.signature(query)
    current = threading.local()  # the table and partition the query running in this thread reads

    def all_items(self: Any) -> Any:
        wanted = getattr(current, "partition", None)
        if wanted is None or wanted[0] is not self:
            return every_item(self)
        held = self.items.get(wanted[1])
        return sorted(held.values(), key=lambda item: item.range_key) if held else []

    def partition_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        if bound.get("index_name") or not self.range_key_attr or bound.get("hash_key") is None:
            return query(self, *args, **kwargs)  # an index, or a table without a sort key: as stock moto
        current.partition = (self, bound["hash_key"])
        try:
            return query(self, *args, **kwargs)
        finally:
            current.partition = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]


def _request_constants_once() -> None:
    import functools
    import logging

    import moto.backends
    import moto.core.responses
    from moto.core.utils import method_names_from_class

    modules = tuple(moto.backends.list_of_moto_modules())  # the installed package does not change
    moto.backends.list_of_moto_modules = lambda: modules
    names = functools.lru_cache(maxsize=None)(method_names_from_class)  # the classes are patched by now
    setattr(moto.core.responses, "method_names_from_class", names)  # noqa: B010 - not exported by moto
    if os.environ.get("IOTPM_EMULATOR_REQUEST_LOG") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _direct_kinesis_answers() -> None:
    """PutRecords and GetRecords answered with the JSON stock moto's serializer would write."""
    import base64

    from moto.kinesis.responses import KinesisResponse

    def put_records(self: Any) -> str:
        stream_arn, stream_name = self._get_param("StreamARN"), self._get_param("StreamName")
        return json.dumps(self.kinesis_backend.put_records(stream_arn, stream_name, self._get_param("Records")))

    def write(r: Any) -> str:
        """A record as the answer writes it: what ``json.dumps`` writes of its fields (base64 text needs
        no escaping, a float is written as its repr), without building the dict."""
        data = base64.b64encode(base64.b64decode(r.data)).decode()  # as stock moto re-encodes it
        return (
            f'{{"Data": "{data}", "PartitionKey": {json.dumps(r.partition_key)}, '
            f'"SequenceNumber": "{r.sequence_number}", "ApproximateArrivalTimestamp": {json.dumps(r.created_at)}}}'
        )

    def written(r: Any) -> str:
        """A record as the answer writes it, made once while it is among the latest read (a retry reads it again)."""
        return KINESIS_RECORD_JSON.get(r, write)

    def get_records(self: Any) -> str:
        stream_arn, iterator = self._get_param("StreamARN"), self._get_param("ShardIterator")
        following, records, behind = self.kinesis_backend.get_records(stream_arn, iterator, self._get_param("Limit"))
        return (
            f'{{"NextShardIterator": {json.dumps(following)}, "Records": [{", ".join(map(written, records))}], '
            f'"MillisBehindLatest": {json.dumps(behind)}}}'
        )

    KinesisResponse.put_records = put_records  # type: ignore[method-assign,assignment]
    KinesisResponse.get_records = get_records  # type: ignore[method-assign,assignment]


#: DynamoDB actions whose answers are items, counts and keys: written as JSON directly.
DIRECT_DYNAMODB_ACTIONS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
)


def _direct_dynamodb_answers() -> None:
    """The item actions' answers written as JSON directly: the generic serializer looked up each
    attribute's shape by name (a quarter of the emulator's time in the twin, for the processor's
    reads and writes). Their results are already in DynamoDB's JSON (``DynamoResult``), with
    nothing that needs a shape (no timestamps; binary values base64 as on the wire); the status
    and headers are stock moto's, from serializing an empty result."""
    import base64

    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    stock = DynamoHandler.serialized

    def dropped_none(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: dropped_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [dropped_none(v) for v in value]
        return value

    def binary(value: Any) -> str:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode()
        raise TypeError(f"{type(value).__name__} is not JSON")

    def serialized(self: Any, action_result: Any) -> Any:
        if type(action_result) is not DynamoResult or self._get_action() not in DIRECT_DYNAMODB_ACTIONS:
            return stock(self, action_result)
        status, headers, _ = stock(self, DynamoResult({}))
        return status, headers, json.dumps(dropped_none(action_result.result), default=binary)

    DynamoHandler.serialized = serialized  # type: ignore[method-assign]


def _json_body_parsed_once() -> None:
    """``BaseResponse._get_param`` as stock moto answers it, with the JSON body parsed once per request."""
    from moto.core.responses import BaseResponse

    original = BaseResponse._get_param
    unparsed = object()

    def get_param(self: Any, param_name: str, if_none: Any = None) -> Any:
        if self.automated_parameter_parsing or self.querystring.get(param_name) is not None or self.body is None:
            return original(self, param_name, if_none)
        cached = self.__dict__.get("_iotpm_body")
        if cached is None or cached[0] is not self.body:  # a handler may replace the body
            try:
                parsed: Any = json.loads(self.body)
            except (ValueError, TypeError):
                parsed = unparsed
            cached = self._iotpm_body = (self.body, parsed)
        parsed = cached[1]
        if isinstance(parsed, dict) and param_name in parsed:
            return parsed[param_name]
        if self.uri_match and param_name in self.uri_match:
            return self.uri_match[param_name]
        return if_none

    BaseResponse._get_param = get_param  # type: ignore[method-assign]


def _athena_delete_named_query() -> None:
    from moto.athena.responses import AthenaResponse

    def delete_named_query(self: Any) -> str:
        self.athena_backend.named_queries.pop(self._get_param("NamedQueryId"), None)
        return "{}"

    AthenaResponse.delete_named_query = delete_named_query  # type: ignore[attr-defined]


def _no_event_source_invokes() -> None:
    """Kinesis puts never invoke a mapped Lambda here: the local twin's poller does that in-process.

    Stock moto calls the function for every record put on a mapped stream, and each
    call tries to reach a Docker daemon first (~0.1 s, then an error logged): with the
    processor's event source mapping applied, PutRecords fell to ~100 records/s.
    """
    from moto.awslambda.models import LambdaBackend

    def send_kinesis_message(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    send_kinesis_message.iotpm_no_op = True  # type: ignore[attr-defined]
    LambdaBackend.send_kinesis_message = send_kinesis_message  # type: ignore[method-assign]


def _fast_kinesis_shards() -> None:
    import datetime
    import time

    from moto.awslambda.models import LambdaBackend
    from moto.kinesis.models import Record, Shard, Stream

    def newest(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    def oldest(self: Any) -> int:
        return next(iter(self.records)) if self.records else 0

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        # Sequence numbers are consecutive integers (put_record assigns newest + 1).
        last = int(last_sequence_id)
        if not self.records:
            return [], last, 0
        top = newest(self)
        seq = max(last + 1, oldest(self))
        results: list[Any] = []
        while seq <= top and (limit is None or len(results) < limit):
            record = self.records.get(seq)
            if record is not None:
                results.append(record)
                last = seq
            seq += 1
        behind = self.records[top].created_at - results[-1].created_at if results else 0.0
        return results, last, int(behind * 1000)

    put_one = Stream.put_record

    def put_record(self: Any, partition_key: str, explicit_hash_key: str, data: str) -> tuple[str, str]:
        """Stock moto's put, with each partition key's shard looked up once per shard layout, and without
        telling a mapped Lambda of each record (a no-op here: it looked up the Lambda backend per record)."""
        told = getattr(LambdaBackend.send_kinesis_message, "iotpm_no_op", False)
        if explicit_hash_key or (self.lambda_event_source_mappings and not told):
            return put_one(self, partition_key, explicit_hash_key, data)
        layout = tuple(self.shards)
        known = self.__dict__.get("_iotpm_shard_of")
        if known is None or known[0] != layout or len(known[1]) > SHARD_KEYS_KEPT:
            known = self._iotpm_shard_of = (layout, {})
        shard = known[1].get(partition_key)
        if shard is None:
            shard = known[1][partition_key] = self.get_shard_for_key(partition_key, explicit_hash_key)
        return shard.put_record(partition_key, data, explicit_hash_key), shard.shard_id

    epoch = datetime.datetime(1970, 1, 1)

    def shard_put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        """Stock moto's put onto a shard, with the record's arrival read from the clock once (stock
        moto's ``Record`` reads it as a datetime, then builds the epoch's datetime again to turn it
        into seconds: 6 us a record, the largest part of a put)."""
        sequence_number = newest(self) + 1
        record: Any = Record.__new__(Record)  # as stock moto's, tracked by moto like every model
        record.partition_key, record.data = partition_key, data
        record.sequence_number, record.explicit_hash_key = sequence_number, explicit_hash_key
        micros = time.time_ns() // 1000
        record.created_at_datetime = epoch + datetime.timedelta(microseconds=micros)  # naive UTC, as stock
        record.created_at = micros / 1e6
        self.records[sequence_number] = record
        return str(sequence_number)

    Stream.put_record = put_record  # type: ignore[method-assign]
    Shard.put_record = shard_put_record  # type: ignore[method-assign]
    Shard.get_max_sequence_number = newest  # type: ignore[method-assign]
    Shard.get_min_sequence_number = oldest  # type: ignore[method-assign]
    Shard.get_records = get_records  # type: ignore[method-assign]


def _security_group_rule_descriptions() -> None:
    from moto.ec2.models.security_groups import SecurityGroupRule

    original_init = SecurityGroupRule.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        prefix_list = kwargs.get("prefix_list_id") or (args[7] if len(args) > 7 else None)
        self._iotpm_description = (self.source_group or {}).get("Description") or (prefix_list or {}).get("Description")

    def description(self: Any) -> str | None:
        return self.ip_range.get("Description") or getattr(self, "_iotpm_description", None)

    SecurityGroupRule.__init__ = init  # type: ignore[method-assign]
    SecurityGroupRule.description = property(description)  # type: ignore[assignment,method-assign]


def _stable_iot_endpoint() -> None:
    from moto.iot.models import FakeEndpoint, IoTBackend

    def describe_endpoint(self: Any, endpoint_type: str) -> Any:
        endpoint = FakeEndpoint(endpoint_type, self.region_name)
        prefix = f"iotpm{self.account_id[-6:]}"
        endpoint.endpoint = endpoint.endpoint.replace(endpoint.endpoint.split(".", 1)[0].split("-")[0], prefix, 1)
        self.endpoint = endpoint
        return endpoint

    IoTBackend.describe_endpoint = describe_endpoint  # type: ignore[method-assign]


def _iot_tags() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.iot.responses import IoTResponse

    def arn(self: Any, kind: str, name: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.current_account}:{kind}/{name}"

    def list_tags_for_resource(self: Any) -> Any:
        tags = IOT_TAGS.get(unquote(self._get_param("resourceArn") or ""), {})
        return ActionResult({"tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]})

    def tag_resource(self: Any) -> Any:
        tags = {t["Key"]: t.get("Value", "") for t in self._get_param("tags") or []}
        IOT_TAGS.setdefault(self._get_param("resourceArn"), {}).update(tags)
        return EmptyResult()

    def untag_resource(self: Any) -> Any:
        current = IOT_TAGS.setdefault(self._get_param("resourceArn"), {})
        for key in self._get_param("tagKeys") or []:
            current.pop(key, None)
        return EmptyResult()

    def keeping_tags(original: Callable[[Any], Any], kind: str, name_of: Callable[[Any], str]) -> Callable[[Any], Any]:
        def create(self: Any) -> Any:
            result = original(self)
            tags = {t["Key"]: t.get("Value", "") for t in self._get_param("tags") or []}
            header = self.headers.get("x-amz-tagging")  # CreateTopicRule sends its tags as a query string
            tags.update(dict(parse_qsl(header)) if header else {})
            IOT_TAGS[arn(self, kind, name_of(self))] = tags
            return result

        return create

    IoTResponse.list_tags_for_resource = list_tags_for_resource  # type: ignore[attr-defined]
    IoTResponse.tag_resource = tag_resource  # type: ignore[attr-defined]
    IoTResponse.untag_resource = untag_resource  # type: ignore[attr-defined]
    for method, kind, name_of in (
        ("create_thing_type", "thingtype", lambda r: r._get_param("thingTypeName")),
        ("create_thing_group", "thinggroup", lambda r: unquote(r.path.split("/thing-groups/")[-1])),
        ("create_policy", "policy", lambda r: r._get_param("policyName")),
        ("create_topic_rule", "rule", lambda r: r._get_param("ruleName")),
    ):
        setattr(IoTResponse, method, keeping_tags(getattr(IoTResponse, method), kind, name_of))


def _kinesis_create_tags() -> None:
    from moto.kinesis.responses import KinesisResponse

    original = KinesisResponse.create_stream

    def create_stream(self: Any) -> Any:
        result = original(self)
        tags = self._get_param("Tags")
        if tags:
            self.kinesis_backend.add_tags_to_stream(None, self._get_param("StreamName"), tags)
        return result

    KinesisResponse.create_stream = create_stream  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server with iotpm's compatibility fixes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    apply_fixes(f"http://{args.host}:{args.port}")
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    main()
