# Offline tests of the analytics module (mocked AWS provider): the tables project
# their partitions from the archive's key layout, the workgroup enforces encrypted
# results, and every named query lands in the workgroup.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:root" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock" }
  }
}

variables {
  name                  = "iotpm-test"
  archive_bucket        = "iotpm-test-archive-123456789012"
  archive_bucket_arn    = "arn:aws:s3:::iotpm-test-archive-123456789012"
  kms_key_arn           = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  force_destroy_results = false
  tls_only              = true
  named_queries = {
    device_readings = { description = "a device's readings", query = "SELECT 1" }
    late_data       = { description = "late data", query = "SELECT 2" }
  }
  tags = { Project = "iotpm" }
}

run "tables_project_partitions_from_the_archive_layout" {
  command = apply

  assert {
    condition     = aws_glue_catalog_database.this.name == "iotpm_test_archive"
    error_message = "The database name is the prefix with underscores (Athena identifiers)."
  }
  assert {
    condition     = toset(keys(aws_glue_catalog_table.this)) == toset(["raw_records", "quarantine_records"])
    error_message = "raw/ and quarantine/ are the two tables."
  }
  assert {
    condition = alltrue([for k, t in aws_glue_catalog_table.this :
      t.parameters["projection.enabled"] == "true" &&
      t.parameters["storage.location.template"] == "s3://iotpm-test-archive-123456789012/${k == "raw_records" ? "raw" : "quarantine"}/year=$${year}/month=$${month}/day=$${day}/hour=$${hour}/" &&
      t.parameters["projection.month.digits"] == "2" && t.parameters["projection.hour.range"] == "0,23"
    ])
    error_message = "Partitions are projected from year=/month=/day=/hour= (two-digit month, day, hour), no crawler."
  }
  assert {
    condition     = join(",", [for p in aws_glue_catalog_table.this["raw_records"].partition_keys : p.name]) == "year,month,day,hour"
    error_message = "Partition columns in key order."
  }
  assert {
    condition     = contains([for c in aws_glue_catalog_table.this["raw_records"].storage_descriptor[0].columns : c.name], "sequence_number")
    error_message = "The raw table carries the archive key (shard_id, sequence_number)."
  }
}

run "workgroup_enforces_encrypted_results" {
  command = apply

  assert {
    condition     = aws_athena_workgroup.this.configuration[0].enforce_workgroup_configuration
    error_message = "Clients must not override the result location or encryption."
  }
  assert {
    condition     = aws_athena_workgroup.this.configuration[0].result_configuration[0].encryption_configuration[0].encryption_option == "SSE_KMS"
    error_message = "Results are encrypted with the environment's KMS key."
  }
  assert {
    condition     = module.results.public_access_blocked && module.results.sse_algorithm == "aws:kms"
    error_message = "The results bucket is private and KMS-encrypted."
  }
  assert {
    condition     = module.results.tls_only && jsondecode(module.results.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    error_message = "The results bucket (it holds the fleet reports) refuses plain HTTP, as every bucket does."
  }
  assert {
    condition     = !module.results.force_destroy
    error_message = "force_destroy is off unless asked for."
  }
  assert {
    condition     = toset(keys(aws_athena_named_query.this)) == toset(["device_readings", "late_data"]) && alltrue([for q in aws_athena_named_query.this : q.database == "iotpm_test_archive"])
    error_message = "Every named query is created on the archive database."
  }
}

run "cutoff_below_athena_minimum_is_refused" {
  command = plan
  variables {
    bytes_scanned_cutoff = 1000
  }
  expect_failures = [var.bytes_scanned_cutoff]
}
