"""The composition root: settings from the environment (set by Terraform), adapters built once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from iotpm.adapters.dynamodb import TableNames
from iotpm.adapters.registry import OperatorTables
from iotpm.service import Processor, ProcessorSettings

if TYPE_CHECKING:
    from iotpm.analytics.compaction import Compactor
    from iotpm.analytics.job import ReportJob
    from iotpm.api.ports import Queries
    from iotpm.operator.service import Operator
    from iotpm.service.config_cache import OperatorCache


class TableSettings(BaseSettings):
    """The tables of one environment (what the API Lambda needs). Names come from Terraform outputs."""

    model_config = SettingsConfigDict(env_prefix="IOTPM_", extra="ignore", populate_by_name=True)

    environment: str = "local"
    # No region in code: an explicit IOTPM_REGION, else the runtime's (Lambda sets AWS_REGION),
    # else botocore's own chain (AWS_DEFAULT_REGION, the config file).
    region: str | None = Field(default=None, validation_alias=AliasChoices("IOTPM_REGION", "AWS_REGION"))
    readings_table: str
    devices_table: str
    anomalies_table: str
    rollups_table: str
    max_attempts: int = 4  # botocore's standard retry mode, per call
    # the operator's tables (empty: this deployment has no registry, config or audit)
    registry_table: str = ""
    config_table: str = ""
    audit_table: str = ""

    def operator_tables(self) -> OperatorTables | None:
        """The registry, config and audit tables, or None when they are not all set."""
        names = (self.registry_table, self.config_table, self.audit_table)
        return OperatorTables(*names) if all(names) else None

    def tables(self) -> TableNames:
        return TableNames(self.readings_table, self.devices_table, self.anomalies_table, self.rollups_table)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Self:
        """The settings a function would read from ``environ`` (e.g. its Terraform-set variables).

        Stricter than reading ``os.environ``: an ``IOTPM_*`` name that is not a setting is an
        error, so a variable Terraform sets under a misspelt name cannot go unnoticed.
        """
        fields = {f"IOTPM_{name.upper()}": name for name in cls.model_fields}
        unknown = sorted(k for k in environ if k.startswith("IOTPM_") and k not in fields)
        if unknown:
            raise ValueError(f"{cls.__name__} has no setting for {', '.join(unknown)}")
        values: dict[str, Any] = {fields[k]: v for k, v in environ.items() if k in fields}
        values.setdefault("region", environ.get("AWS_REGION"))
        return cls.model_validate(values)


class Settings(TableSettings):
    """Everything the processor Lambda writes to, and its switches."""

    archive_bucket: str
    alerts_topic_arn: str
    timestream_enabled: bool = False
    timestream_database: str = ""
    timestream_table: str = ""
    readings_ttl_days: int = 90
    # write-behind: the per-shard snapshots' bucket (empty: every batch is written through)
    state_bucket: str = ""
    compact_interval_s: int = 600
    # a device's channel set stops growing here (at most 64: the detector's C kernel, and a device's
    # hour of minute rollups in one DynamoDB item); per device type as "pump=32,probe=8"
    max_channels: int = Field(default=64, ge=1, le=64)
    max_channels_by_type: str = ""
    # the operator's controls (with the registry, config and audit tables): how old a cached
    # registration, alarm control or limits document may be, and where unregistered devices go
    operator_cache_ttl_s: float = Field(default=30.0, ge=0, le=60)
    unregistered_devices: Literal["payload", "unassigned", "quarantine"] = "payload"

    def channel_caps(self) -> dict[str, int]:
        """``max_channels_by_type`` as a mapping (a malformed pair is an error at start, not a silent default)."""
        caps = {}
        for pair in filter(None, (p.strip() for p in self.max_channels_by_type.split(","))):
            kind, sep, number = pair.partition("=")
            if not sep or not kind.strip() or not number.strip().isdigit() or not 1 <= int(number) <= 64:
                raise ValueError(f"max_channels_by_type: {pair!r} is not <device type>=<1..64>")
            caps[kind.strip()] = int(number)
        return caps


def clients(settings: TableSettings, names: tuple[str, ...] | None = None, *, validate: bool = True) -> dict[str, Any]:
    """boto3 clients with standard retries (AWS_ENDPOINT_URL[_<SERVICE>] is honoured by boto3).

    ``validate=False`` leaves out botocore's client-side check of every parameter: on
    the processor's hot path it is a third of the CPU a request costs (1,000
    Timestream records: 180 ms with it, 113 ms without); the services check the same
    and answer ``ValidationException``, which the adapters translate like any refusal.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        max_pool_connections=16,
        parameter_validation=validate,
    )
    session = boto3.session.Session()
    if names is None:
        timestream = isinstance(settings, Settings) and settings.timestream_enabled
        names = ("dynamodb", "s3", "sns") + (("timestream-write",) if timestream else ())
    return {name: session.client(name, config=config) for name in names}


def build_processor(settings: Settings | None = None, aws: dict[str, Any] | None = None) -> Processor:
    """The processor wired to DynamoDB, S3, SNS and (when enabled) Timestream."""
    from iotpm.adapters.dynamodb import DynamoAnomalies, DynamoLog, DynamoReadings, DynamoRollups, DynamoStates
    from iotpm.adapters.s3 import S3Archive, S3Snapshots
    from iotpm.adapters.sns import SnsAlerts
    from iotpm.adapters.timestream import TimestreamWriter

    s = settings or Settings()
    c = aws or clients(s, validate=False)
    ddb = c["dynamodb"]
    return Processor(
        states=DynamoStates(ddb, s.devices_table),
        readings=DynamoReadings(ddb, s.readings_table),
        anomalies=DynamoAnomalies(ddb, s.anomalies_table),
        rollups=DynamoRollups(ddb, s.rollups_table),
        archive=S3Archive(c["s3"], s.archive_bucket),
        alerts=SnsAlerts(c["sns"], s.alerts_topic_arn),
        timeseries=TimestreamWriter(c["timestream-write"], s.timestream_database, s.timestream_table)
        if s.timestream_enabled
        else None,
        settings=ProcessorSettings(
            environment=s.environment,
            readings_ttl_days=s.readings_ttl_days,
            compact_interval_s=s.compact_interval_s,
            max_channels=s.max_channels,
            max_channels_by_type=s.channel_caps(),
        ),
        batch_log=DynamoLog(ddb, s.readings_table) if s.state_bucket else None,
        snapshots=S3Snapshots(c["s3"], s.state_bucket) if s.state_bucket else None,
        operator=_operator_cache(s, ddb),
    )


def _operator_cache(s: Settings, ddb: Any) -> OperatorCache | None:
    """The processor's cached view of the operator's tables (None without them)."""
    from iotpm.adapters.registry import DynamoDocuments, DynamoRegistry
    from iotpm.service.config_cache import OperatorCache

    names = s.operator_tables()
    if names is None:
        return None
    return OperatorCache(DynamoRegistry(ddb, names.registry), DynamoDocuments(ddb, names.config),
                         ttl_s=s.operator_cache_ttl_s, unregistered=s.unregistered_devices)  # fmt: skip


def build_queries(settings: TableSettings | None = None, aws: dict[str, Any] | None = None) -> Queries:
    """The analytics API's read side on DynamoDB."""
    from iotpm.adapters.dynamodb_queries import DynamoQueries

    s = settings or TableSettings()
    c = aws or clients(s, ("dynamodb",))
    return DynamoQueries(c["dynamodb"], s.tables())


def build_operator(
    settings: TableSettings | None = None, aws: dict[str, Any] | None = None, queries: Queries | None = None
) -> Operator | None:
    """The operator's controls on DynamoDB (None when the environment has no operator tables)."""
    from iotpm.adapters.registry import DynamoAudit, DynamoDocuments, DynamoRegistry
    from iotpm.operator.service import Operator

    s = settings or TableSettings()
    names = s.operator_tables()
    if names is None:
        return None
    c = aws or clients(s, ("dynamodb",))
    ddb = c["dynamodb"]
    devices = (queries or build_queries(s, c)).device
    return Operator(DynamoRegistry(ddb, names.registry), DynamoDocuments(ddb, names.config),
                    DynamoAudit(ddb, names.audit), devices)  # fmt: skip


class ReportSettings(TableSettings):
    """The report Lambda: the tables it reads through the API, Athena, where reports go, the summary topic."""

    reports_bucket: str
    athena_workgroup: str
    athena_database: str
    report_topic_arn: str = ""  # empty: no summary is sent


def build_report_job(settings: ReportSettings | None = None, aws: dict[str, Any] | None = None) -> ReportJob:
    """The fleet report over the API handler (in-process, DynamoDB behind it), Athena, S3 and SNS."""
    from iotpm.adapters.athena import AthenaQueries
    from iotpm.adapters.s3 import S3Reports
    from iotpm.adapters.sns import SnsAlerts
    from iotpm.analytics.job import ReportJob
    from iotpm.api.app import build_app

    s = settings or ReportSettings()
    c = aws or clients(s, ("dynamodb", "athena", "s3", "sns"))
    queries = build_queries(s, c)
    app = build_app(queries, operator=build_operator(s, c, queries))  # alarms' states (with the operator's tables)
    return ReportJob(
        api=lambda event, context: app.resolve(dict(event), context),
        queries=AthenaQueries(c["athena"], s.athena_workgroup, s.athena_database),
        reports=S3Reports(c["s3"], s.reports_bucket),
        alerts=SnsAlerts(c["sns"], s.report_topic_arn) if s.report_topic_arn else None,
    )


class CompactionJobSettings(BaseSettings):
    """The compaction Lambda: the archive bucket and when an hour is closed (Terraform sets them)."""

    model_config = SettingsConfigDict(env_prefix="IOTPM_", extra="ignore", populate_by_name=True)

    region: str | None = Field(default=None, validation_alias=AliasChoices("IOTPM_REGION", "AWS_REGION"))
    archive_bucket: str
    compaction_grace_s: int = 7200
    compaction_window_h: int = 3
    compaction_max_hours: int = 48
    max_attempts: int = 4


def build_compactor(settings: CompactionJobSettings | None = None, aws: dict[str, Any] | None = None) -> Compactor:
    """The archive's Parquet compaction over S3 (DuckDB does the work in the function's /tmp)."""
    from iotpm.adapters.s3_files import S3ArchiveFiles
    from iotpm.analytics.compaction import CompactionSettings, Compactor

    s = settings or CompactionJobSettings()
    if aws is None:
        import boto3
        from botocore.config import Config

        config = Config(region_name=s.region, retries={"mode": "standard", "max_attempts": s.max_attempts})
        aws = {"s3": boto3.session.Session().client("s3", config=config)}
    knobs = CompactionSettings(grace_s=s.compaction_grace_s, window_h=s.compaction_window_h,
                               max_hours=s.compaction_max_hours)  # fmt: skip
    return Compactor(S3ArchiveFiles(aws["s3"], s.archive_bucket), knobs)
