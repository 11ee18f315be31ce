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

run "without_write_behind_only_the_archive_is_compacted" {
  command = plan

  assert {
    condition     = keys(module.schedule.schedules) == ["archive"] && length(local.idle_env) == 0
    error_message = "Without write-behind there is no idle-shard schedule and no snapshot bucket in the environment."
  }
  assert {
    condition     = length([for s in jsondecode(local.policy_json).Statement : s if length([for a in flatten([s.Action]) : a if startswith(a, "dynamodb:")]) > 0]) == 0
    error_message = "Without write-behind the function has no DynamoDB grant."
  }
}

run "write_behind_adds_the_idle_shard_schedule_and_only_what_it_needs" {
  command = apply

  variables {
    write_behind = {
      state_bucket        = "iotpm-test-state"
      state_bucket_arn    = "arn:aws:s3:::iotpm-test-state"
      tables              = { readings = "r", devices = "d", anomalies = "a", rollups = "u" }
      table_arns          = { readings = "arn:aws:dynamodb:eu-west-1:123456789012:table/r", devices = "arn:aws:dynamodb:eu-west-1:123456789012:table/d", anomalies = "arn:aws:dynamodb:eu-west-1:123456789012:table/a", rollups = "arn:aws:dynamodb:eu-west-1:123456789012:table/u" }
      readings_ttl_days   = 90
      compact_interval_s  = 600
      processor_timeout_s = 120
    }
  }

  assert {
    condition     = jsondecode(module.schedule.schedules["idle_shards"].input) == { job = "idle_shards" } && module.schedule.schedules["idle_shards"].target_arn == module.function.arn && module.schedule.schedules["idle_shards"].expression == module.schedule.schedules["archive"].expression
    error_message = "The idle-shard job runs hourly on the same function, told by its schedule's input."
  }
  assert {
    condition     = local.idle_env["IOTPM_IDLE_WAIT_S"] == "150" && local.idle_env["IOTPM_IDLE_AFTER_S"] == "3600" && local.idle_env["IOTPM_STATE_BUCKET"] == "iotpm-test-state" && local.idle_env["IOTPM_READINGS_TABLE"] == "r" && local.idle_env["IOTPM_COMPACT_INTERVAL_S"] == "600"
    error_message = "The job waits longer than a processor batch runs (its timeout + 30 s) and reads the processor's stores."
  }
  assert {
    condition     = one([for s in jsondecode(local.policy_json).Statement : s if s.Sid == "CompactTables"]).Resource == ["arn:aws:dynamodb:eu-west-1:123456789012:table/r", "arn:aws:dynamodb:eu-west-1:123456789012:table/d", "arn:aws:dynamodb:eu-west-1:123456789012:table/u"] && one([for s in jsondecode(local.policy_json).Statement : s if s.Sid == "ReadBatchLog"]).Resource == ["arn:aws:dynamodb:eu-west-1:123456789012:table/r"]
    error_message = "The job writes the readings, devices and rollups tables (not the anomalies') and queries the log in the readings table."
  }
  assert {
    condition     = one([for s in jsondecode(local.policy_json).Statement : s if s.Sid == "Snapshots"]).Resource == ["arn:aws:s3:::iotpm-test-state/snapshots/*"] && one([for s in jsondecode(local.policy_json).Statement : s if s.Sid == "ListSnapshots"]).Condition.StringLike["s3:prefix"] == ["snapshots/*"]
    error_message = "The job lists, reads and writes the snapshots only."
  }
  assert {
    condition     = length([for s in jsondecode(local.policy_json).Statement : s if length([for a in flatten([s.Action]) : a if can(regex("Delete", a))]) > 0]) == 0
    error_message = "The job deletes nothing."
  }
}

run "an_idle_threshold_past_a_day_is_refused" {
  command = plan

  variables {
    idle_after_s = 172800
  }
  expect_failures = [var.idle_after_s]
}

run "a_processor_timeout_that_leaves_the_idle_job_no_time_is_refused" {
  command = plan

  variables {
    write_behind = {
      state_bucket        = "iotpm-test-state"
      state_bucket_arn    = "arn:aws:s3:::iotpm-test-state"
      tables              = { readings = "r", devices = "d", anomalies = "a", rollups = "u" }
      table_arns          = { readings = "arn:aws:dynamodb:eu-west-1:123456789012:table/r", devices = "arn:aws:dynamodb:eu-west-1:123456789012:table/d", anomalies = "arn:aws:dynamodb:eu-west-1:123456789012:table/a", rollups = "arn:aws:dynamodb:eu-west-1:123456789012:table/u" }
      readings_ttl_days   = 90
      compact_interval_s  = 600
      processor_timeout_s = 880
    }
  }
  expect_failures = [var.write_behind]
}
