# Offline tests of the compaction module (mocked AWS provider).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:root" }
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
  name               = "iotpm-test"
  environment        = "dev"
  zip_path           = "../pipeline/tests/fixture.zip"
  archive_bucket     = "iotpm-test-archive-123456789012"
  archive_bucket_arn = "arn:aws:s3:::iotpm-test-archive-123456789012"
  glue_database      = "iotpm_test_archive"
  subnet_ids         = ["subnet-1", "subnet-2"]
  security_group_ids = ["sg-1"]
  kms_key_arn        = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  architecture       = "arm64"
  log_retention_days = 30
}

run "an_hourly_schedule_invokes_the_job_with_its_settings" {
  command = apply

  assert {
    condition     = module.schedule.schedules["archive"].expression == "cron(15 * * * ? *)" && module.schedule.schedules["archive"].target_arn == module.function.arn
    error_message = "The job runs every hour, a quarter past."
  }
  assert {
    condition     = jsondecode(module.schedule.schedules["archive"].input) == {} && module.schedule.schedules["archive"].window_mode == "OFF"
    error_message = "The job takes its settings from its environment, not the schedule's input."
  }
}

run "the_tables_match_what_the_job_writes" {
  command = plan

  assert {
    condition     = aws_glue_catalog_table.compacted.storage_descriptor[0].location == "s3://iotpm-test-archive-123456789012/compacted/readings/" && aws_glue_catalog_table.compacted.parameters["storage.location.template"] == "s3://iotpm-test-archive-123456789012/compacted/readings/year=$${year}/month=$${month}/day=$${day}/hour=$${hour}/"
    error_message = "compacted_readings reads the Parquet under compacted/readings/ with the raw archive's partition layout."
  }
  assert {
    condition     = [for c in aws_glue_catalog_table.compacted.storage_descriptor[0].columns : c.name] == ["device_id", "site", "line", "device_type", "ts_ms", "arrival_ms", "metrics", "temperature_c", "pressure_psi", "vibration_mm_s", "shard_id", "sequence_number"]
    error_message = "The Parquet columns, in order, as src/iotpm/analytics/duck.py COMPACTED_COLUMNS."
  }
  assert {
    condition     = aws_glue_catalog_table.state.storage_descriptor[0].location == "s3://iotpm-test-archive-123456789012/compacted/_state/"
    error_message = "compaction_state reads the job's mark."
  }
}

run "the_function_writes_only_compacted" {
  command = plan

  assert {
    condition     = one([for s in jsondecode(local.policy_json).Statement : s if s.Sid == "WriteCompacted"]).Resource == ["arn:aws:s3:::iotpm-test-archive-123456789012/compacted/*"] && length([for s in jsondecode(local.policy_json).Statement : s if contains(flatten([s.Action]), "s3:DeleteObject")]) == 0
    error_message = "The job writes compacted/ only, and deletes nothing."
  }
}
