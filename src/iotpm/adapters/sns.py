"""SNS alerts: a readable subject, a JSON body, attributes for filter policies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from iotpm.adapters.errors import aws_call
from iotpm.service.ports import Alert

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef


class SnsAlerts:
    """:class:`~iotpm.service.ports.Alerts` on one topic."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self.client, self.topic_arn = client, topic_arn

    def publish(self, alert: Alert) -> None:
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            k: {"DataType": "String", "StringValue": v} for k, v in alert.attributes.items() if v
        }
        with aws_call(f"Publish {self.topic_arn}"):
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=alert.subject,
                Message=json.dumps(alert.body, separators=(",", ":")),
                MessageAttributes=attributes,
            )
