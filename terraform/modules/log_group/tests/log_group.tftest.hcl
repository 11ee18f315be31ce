# Offline tests of the log group module (mocked AWS provider).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:root" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/iotpm/iotpm-test/vpc-flow" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/iotpm-test-vpc-flow" }
  }
}

variables {
  name           = "/iotpm/iotpm-test/vpc-flow"
  retention_days = 14
  kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  tags           = { Project = "iotpm" }
}

run "a_group_without_a_writer_has_no_role" {
  command = apply # mocked: nothing is created

  assert {
    condition     = aws_cloudwatch_log_group.this.retention_in_days == 14 && aws_cloudwatch_log_group.this.kms_key_id == var.kms_key_arn
    error_message = "The group keeps its events the days given, encrypted with the key."
  }
  assert {
    condition     = length(aws_iam_role.writer) == 0 && output.writer_role_arn == null
    error_message = "No writer, no role."
  }
}

run "a_writer_may_write_to_this_group_only_from_this_account" {
  command = apply # mocked: nothing is created
  variables {
    writer = {
      service     = "vpc-flow-logs.amazonaws.com"
      role_name   = "iotpm-test-vpc-flow"
      policy_name = "write-flow-logs"
      actions     = ["logs:CreateLogStream", "logs:PutLogEvents"]
      source_arn  = "arn:aws:ec2:eu-west-1:123456789012:vpc-flow-log/*"
    }
  }

  assert {
    condition = jsondecode(output.writer_role_trust).Statement[0].Condition == {
      StringEquals = { "aws:SourceAccount" = "123456789012" }
      ArnLike      = { "aws:SourceArn" = "arn:aws:ec2:eu-west-1:123456789012:vpc-flow-log/*" }
    }
    error_message = "Only the service acting for this account (and the source given) may assume the writer's role."
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.writer[0].policy).Statement[0].Resource == "${aws_cloudwatch_log_group.this.arn}:*"
    error_message = "The writer may write to this group's streams only."
  }
}

run "a_retention_cloudwatch_refuses_is_refused" {
  command = plan
  variables {
    retention_days = 10
  }
  expect_failures = [var.retention_days]
}
