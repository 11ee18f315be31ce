# A service's log group, made one way: encrypted with the environment's key, kept for the
# retention the environment chooses, and, for an AWS service that writes to it under a role
# of its own (VPC flow logs), that role: trusted by the service from this account only and
# allowed to write to this group only. A Lambda function's group (modules/function) and the
# API's access log group (modules/api) are written by roles made elsewhere.

data "aws_caller_identity" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  # checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (365 in prod); dev and local keep days, not a year
  name              = var.name
  retention_in_days = var.retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "writer" {
  count = var.writer == null ? 0 : 1
  name  = var.writer.role_name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = var.writer.service }
      Condition = merge(
        { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } },
        var.writer.source_arn == null ? {} : { ArnLike = { "aws:SourceArn" = var.writer.source_arn } },
      )
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "writer" {
  count = var.writer == null ? 0 : 1
  name  = var.writer.policy_name
  role  = aws_iam_role.writer[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = var.writer.actions
      Resource = "${aws_cloudwatch_log_group.this.arn}:*"
    }]
  })
}
