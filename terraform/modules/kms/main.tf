# One customer-managed key per environment: tables, archive, stream, queues, topic and logs.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account = data.aws_caller_identity.current.account_id
  root    = "arn:${data.aws_partition.current.partition}:iam::${local.account}:root"
}

resource "aws_kms_key" "this" {
  description             = "iotpm ${var.name}: data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_days
  policy                  = local.policy
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

locals {
  # In a key policy "*" is the key itself.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "AccountAdministers", Effect = "Allow", Principal = { AWS = local.root }, Action = "kms:*", Resource = "*" },
      {
        Sid       = "CloudWatchLogsEncrypt"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike      = { "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${local.account}:log-group:*" }
          StringEquals = { "aws:SourceAccount" = local.account }
        }
      },
      {
        Sid       = "AlarmsPublishToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = ["cloudwatch.amazonaws.com", "events.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        # Only on behalf of this account's alarms and rules (no confused deputy).
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account }
          ArnLike = { "aws:SourceArn" = [
            "arn:${data.aws_partition.current.partition}:cloudwatch:${data.aws_region.current.name}:${local.account}:alarm:*",
            "arn:${data.aws_partition.current.partition}:events:${data.aws_region.current.name}:${local.account}:rule/*",
          ] }
        }
      },
      {
        # The route queues (modules/alerting) are encrypted with this key: SNS must make a data
        # key to deliver to them, on behalf of this environment's topics only.
        Sid       = "SnsDeliversToEncryptedQueues"
        Effect    = "Allow"
        Principal = { Service = "sns.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account }
          ArnLike      = { "aws:SourceArn" = "arn:${data.aws_partition.current.partition}:sns:${data.aws_region.current.name}:${local.account}:${var.name}-*" }
        }
      },
    ]
  })
}
