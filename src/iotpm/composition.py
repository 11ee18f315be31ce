"""The composition root: settings from the environment (set by Terraform), adapters built once."""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from iotpm.service import Processor, ProcessorSettings


class Settings(BaseSettings):
    """Names and switches of one environment. Every name comes from a Terraform output."""

    model_config = SettingsConfigDict(env_prefix="IOTPM_", extra="ignore")

    environment: str = "local"
    region: str = "us-east-1"
    readings_table: str
    devices_table: str
    anomalies_table: str
    rollups_table: str
    archive_bucket: str
    alerts_topic_arn: str
    timestream_enabled: bool = False
    timestream_database: str = ""
    timestream_table: str = ""
    readings_ttl_days: int = 90
    max_attempts: int = 4  # botocore's standard retry mode, per call


def clients(settings: Settings) -> dict[str, Any]:
    """boto3 clients with standard retries (AWS_ENDPOINT_URL[_<SERVICE>] is honoured by boto3)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        max_pool_connections=16,
    )
    session = boto3.session.Session()
    names = ("dynamodb", "s3", "sns") + (("timestream-write",) if settings.timestream_enabled else ())
    return {name: session.client(name, config=config) for name in names}


def build_processor(settings: Settings | None = None, aws: dict[str, Any] | None = None) -> Processor:
    """The processor wired to DynamoDB, S3, SNS and (when enabled) Timestream."""
    from iotpm.adapters.dynamodb import DynamoAnomalies, DynamoReadings, DynamoRollups, DynamoStates
    from iotpm.adapters.s3 import S3Archive
    from iotpm.adapters.sns import SnsAlerts
    from iotpm.adapters.timestream import TimestreamWriter

    s = settings or Settings()
    c = aws or clients(s)
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
        settings=ProcessorSettings(environment=s.environment, readings_ttl_days=s.readings_ttl_days),
    )
