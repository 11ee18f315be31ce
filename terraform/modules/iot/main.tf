# Devices: a thing per device, a policy that binds each connection to its own thing and
# topic, and the topic rule that enriches readings into Kinesis keyed by device id.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  arn_prefix = "arn:${data.aws_partition.current.partition}:iot:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  rule_name  = replace("${var.name}_telemetry", "-", "_")
}

resource "aws_iot_thing_type" "this" {
  name = "${var.name}-machine"
  properties {
    description           = "iotpm monitored machine (pump, motor, compressor)"
    searchable_attributes = ["device_type", "site", "line"]
  }
  tags = var.tags
}

resource "aws_iot_thing_group" "this" {
  name = "${var.name}-fleet"
  properties {
    description = "Every iotpm device of ${var.name}"
  }
  tags = var.tags
}

resource "aws_iot_thing" "this" {
  for_each        = var.things
  name            = each.key
  thing_type_name = aws_iot_thing_type.this.name
  # a device behind a gateway names it (an IoT attribute cannot be empty: left out otherwise)
  attributes = merge({
    device_type = each.value.device_type
    site        = each.value.site
    line        = each.value.line
  }, each.value.gateway == null ? {} : { gateway = each.value.gateway })
}

resource "aws_iot_thing_group_membership" "this" {
  for_each         = var.things
  thing_name       = aws_iot_thing.this[each.key].name
  thing_group_name = aws_iot_thing_group.this.name
}

# A device connects only as its own thing (client id = thing name, certificate attached
# to that thing) and publishes only to its own telemetry topic, through IoT Basic Ingest:
# $aws/rules/<rule>/<topic_prefix>/<thing>/telemetry goes straight to the topic rule, without
# the message broker, so IoT Core bills no messaging for it (rule actions still are). A
# gateway is a thing like any other: it publishes on its own topic, one message carrying the
# readings of the devices registered under it (the processor checks the registry). The plain
# topic <topic_prefix>/<thing>/telemetry is not allowed: it would be billed as messaging.
resource "aws_iot_policy" "device" {
  name = "${var.name}-device"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Action    = "iot:Connect"
        Resource  = "${local.arn_prefix}:client/$${iot:Connection.Thing.ThingName}"
        Condition = { Bool = { "iot:Connection.Thing.IsAttached" = "true" } }
      },
      {
        Effect   = "Allow"
        Action   = "iot:Publish"
        Resource = "${local.arn_prefix}:topic/$aws/rules/${local.rule_name}/${var.topic_prefix}/$${iot:Connection.Thing.ThingName}/telemetry"
      },
    ]
  })
  tags = var.tags
}

resource "aws_iot_topic_rule" "this" {
  name        = local.rule_name
  description = "Telemetry into Kinesis, enriched with the topic's device id and the broker's receive time"
  enabled     = true
  sql_version = "2016-03-23"
  # The rule adds what the local bridge adds (src/iotpm/local/bridge.py): the thing that
  # published, from the topic the policy allowed it; the processor quarantines a reading
  # whose device id is another thing's (reason device_mismatch) unless the registry puts that
  # device under the publishing gateway. Under Basic Ingest the rule sees the topic without
  # its $aws/rules/<rule> prefix (the FROM clause and topic() alike: "you can use an existing
  # rule with Basic Ingest by adding the Basic Ingest prefix to the message topic",
  # https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html), so topic(2)
  # is still the thing, and the FROM clause still matches the plain topic too.
  sql = "SELECT *, topic(2) AS thing_name FROM '${var.topic_prefix}/+/telemetry'"

  kinesis {
    role_arn      = aws_iam_role.rule.arn
    stream_name   = var.stream_name
    partition_key = "$${topic(2)}"
  }

  # A message the Kinesis action cannot deliver (throttled, stream gone, key refused) is kept
  # whole in the rule-errors bucket; `iotpm replay` puts it back on the stream.
  error_action {
    s3 {
      role_arn    = aws_iam_role.rule.arn
      bucket_name = module.errors.name
      key         = local.error_key
    }
  }

  tags = var.tags
}

locals {
  #: where the error action writes (src/iotpm/adapters/rule_errors.py reads ERROR_PREFIX)
  error_prefix = "errors/"
  error_key    = "${local.error_prefix}$${parse_time(\"yyyy/MM/dd/HH\", timestamp(), \"UTC\")}/$${newuuid()}.json"
}

# The messages the rule failed to deliver, each as AWS IoT writes an error action's message
# (ruleName, topic, clientId, base64OriginalPayload, failures): kept until replayed, then
# moved under replayed/; both expire after error_retention_days.
module "errors" {
  source        = "../bucket"
  name          = "${var.name}-rule-errors-${data.aws_caller_identity.current.account_id}"
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy
  tls_only      = var.tls_only
  lifecycle_rules = [{
    id                         = "expire"
    expiration_days            = var.error_retention_days
    noncurrent_expiration_days = 1
  }]
  tags = var.tags
}

resource "aws_iam_role" "rule" {
  name = "${var.name}-iot-rule"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "iot.amazonaws.com" }
      # Only this account's telemetry rule may assume it (no confused deputy).
      Condition = {
        StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
        ArnLike      = { "aws:SourceArn" = "${local.arn_prefix}:rule/${local.rule_name}" }
      }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "rule" {
  name = "put-telemetry"
  role = aws_iam_role.rule.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = "kinesis:PutRecord", Resource = var.stream_arn },
      # the stream and the errors bucket are encrypted with the key
      { Effect = "Allow", Action = "kms:GenerateDataKey", Resource = var.kms_key_arn },
      { Effect = "Allow", Action = "s3:PutObject", Resource = "${module.errors.arn}/${local.error_prefix}*" },
    ]
  })
}

data "aws_iot_endpoint" "this" {
  endpoint_type = "iot:Data-ATS"
}
