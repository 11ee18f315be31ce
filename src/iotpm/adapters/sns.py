"""SNS alerts: a readable subject, a JSON body, attributes for filter policies."""

from __future__ import annotations

import json
from typing import Any

from iotpm.adapters.errors import aws_call
from iotpm.service.ports import Alert


class SnsAlerts:
    """:class:`~iotpm.service.ports.Alerts` on one topic."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client, self.topic_arn = client, topic_arn

    def publish(self, alert: Alert) -> None:
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in alert.attributes.items() if v}
        with aws_call(f"Publish {self.topic_arn}"):
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=alert.subject,
                Message=json.dumps(alert.body, separators=(",", ":")),
                MessageAttributes=attributes,
            )
