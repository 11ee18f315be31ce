# Offline tests of the report module (mocked AWS provider).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:root" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:mock"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:mock/invocations"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock" }
  }
}

variables {
  name                 = "iotpm-test"
  environment          = "dev"
  zip_path             = "../pipeline/tests/fixture.zip"
  tables               = { readings = "r", devices = "d", anomalies = "a", rollups = "u" }
  table_arns           = { readings = "arn:aws:dynamodb:eu-west-1:123456789012:table/r", devices = "arn:aws:dynamodb:eu-west-1:123456789012:table/d" }
  archive_bucket_arn   = "arn:aws:s3:::archive"
  results_bucket       = "results"
  results_bucket_arn   = "arn:aws:s3:::results"
  athena_workgroup     = "iotpm-test-analytics"
  athena_workgroup_arn = "arn:aws:athena:eu-west-1:123456789012:workgroup/iotpm-test-analytics"
  glue_database        = "iotpm_test_archive"
  summary_topic_arn    = "arn:aws:sns:eu-west-1:123456789012:machine-alarms"
  in_vpc               = true
  subnet_ids           = ["subnet-1", "subnet-2"]
  security_group_ids   = ["sg-1"]
  kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  scopes               = { fleet = {}, line-1 = { site = "plant-1", line = "line-1", hours = 12 } }
  architecture         = "arm64"
  schedule_expression  = "cron(0 6 * * ? *)"
  log_retention_days   = 30
}

run "one_schedule_per_scope_invokes_the_report_with_its_scope" {
  command = apply

  assert {
    condition     = toset(keys(module.schedule.schedules)) == toset(["fleet", "line-1"])
    error_message = "Each scope has its own schedule."
  }
  assert {
    condition     = jsondecode(module.schedule.schedules["line-1"].input) == { site = "plant-1", line = "line-1", hours = 12 }
    error_message = "The schedule hands the report its scope and period."
  }
  assert {
    condition     = module.schedule.schedules["fleet"].expression == "cron(0 6 * * ? *)" && module.schedule.schedules["fleet"].timezone == "UTC" && module.schedule.schedules["fleet"].window_mode == "OFF"
    error_message = "At the expression given (the pipeline's default: daily at 06:00 UTC), on time."
  }
  assert {
    condition = (
      jsondecode(module.schedule.policy_json).Statement[0].Action == ["lambda:InvokeFunction"] &&
      jsondecode(module.schedule.policy_json).Statement[1].Action == ["kms:Decrypt"] &&
      length(jsondecode(module.schedule.policy_json).Statement) == 2
    )
    error_message = "The scheduler may only invoke the report function (and decrypt its schedules, which are encrypted with the key)."
  }
}

run "the_function_may_read_and_write_only_what_it_needs" {
  command = apply

  assert {
    condition = alltrue([for s in jsondecode(output.policy_json).Statement :
    !anytrue([for a in s.Action : can(regex("\\*", a)) || a == "dynamodb:Scan"])])
    error_message = "No wildcard actions, no Scan."
  }
  assert {
    condition = [for s in jsondecode(output.policy_json).Statement : s.Resource if contains(s.Action, "dynamodb:BatchGetItem")] == [
      ["arn:aws:dynamodb:eu-west-1:123456789012:table/d"]
    ]
    error_message = "The report reads the fleet as the API does (BatchGetItem on the devices table, which its code calls), on nothing else."
  }
}

run "a_period_past_the_api_range_is_refused" {
  command = plan
  variables {
    scopes = { long = { hours = 5000 } }
  }
  expect_failures = [var.scopes]
}
