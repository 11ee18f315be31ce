# EventBridge Scheduler schedules that invoke one Lambda function, with the role the
# scheduler assumes to do it (bound to this account; it may invoke that function and decrypt
# the schedules, which are encrypted with the environment's key). The compaction runs on one
# schedule, the fleet report on one per scope.

data "aws_caller_identity" "current" {}

resource "aws_iam_role" "this" {
  name = var.role_name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name = var.policy_name
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["lambda:InvokeFunction"], Resource = [var.function_arn] },
      # the schedules are encrypted with the environment's key (kms_key_arn below)
      { Effect = "Allow", Action = ["kms:Decrypt"], Resource = [var.kms_key_arn] },
    ]
  })
}

resource "aws_scheduler_schedule" "this" {
  for_each                     = var.schedules
  name                         = each.value.name
  description                  = each.value.description
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.timezone
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.function_arn
    role_arn = aws_iam_role.this.arn
    input    = each.value.input

    retry_policy {
      maximum_retry_attempts       = 2
      maximum_event_age_in_seconds = 3600
    }
  }
}
