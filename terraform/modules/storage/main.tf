# DynamoDB tables keyed for the API's reads (see src/iotpm/adapters/dynamodb.py), the
# raw archive in S3, and the optional Timestream sink.

locals {
  # name => hash key, range key (with its type), GSIs, whether items expire
  tables = {
    readings = {
      hash       = "device_id", range = "sk", range_type = "S", ttl = true
      attributes = { device_id = "S", sk = "S" }
      indexes    = {}
    }
    devices = {
      hash       = "device_id", range = null, range_type = null, ttl = false
      attributes = { device_id = "S", fleet = "S", site_key = "S", line = "S" }
      # keys only: a device record is rewritten every compaction, and an index that projects
      # keys alone is written only when they change (ALL would bill every write three times)
      indexes = {
        by_site = { hash = "fleet", range = "site_key", projection = "KEYS_ONLY" }
        by_line = { hash = "line", range = "device_id", projection = "KEYS_ONLY" }
      }
    }
    anomalies = {
      hash       = "device_id", range = "sk", range_type = "S", ttl = true
      attributes = { device_id = "S", sk = "S", day = "S", day_key = "S" }
      indexes = {
        by_day = { hash = "day", range = "day_key", projection = "ALL" }
      }
    }
    rollups = {
      hash       = "series", range = "bucket", range_type = "N", ttl = true
      attributes = { series = "S", bucket = "N" }
      indexes    = {}
    }
  }
}

resource "aws_dynamodb_table" "this" {
  for_each                    = local.tables
  name                        = "${var.name}-${each.key}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash
  range_key                   = each.value.range
  deletion_protection_enabled = var.deletion_protection

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.indexes
    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value.hash
      range_key       = global_secondary_index.value.range
      projection_type = global_secondary_index.value.projection
    }
  }

  ttl {
    enabled        = each.value.ttl
    attribute_name = each.value.ttl ? "expires_at" : ""
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

data "aws_caller_identity" "current" {}

module "archive" {
  source        = "../bucket"
  name          = "${var.name}-archive-${data.aws_caller_identity.current.account_id}"
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy
  tls_only      = var.tls_only
  # Object Lock is on for every archive (it can only be chosen at creation); NONE: no default retention
  object_lock = { mode = var.object_lock_mode, days = var.object_lock_days }
  lifecycle_rules = [{
    id                         = "tiering"
    transitions                = { STANDARD_IA = var.archive_ia_days, GLACIER = var.archive_glacier_days }
    noncurrent_transitions     = { STANDARD_IA = var.archive_ia_days }
    expiration_days            = var.archive_expiration_days > 0 ? var.archive_expiration_days : null
    noncurrent_expiration_days = var.archive_expiration_days > 0 ? var.archive_noncurrent_days : null
  }]
  abort_incomplete_upload_days = 7
  tags                         = var.tags
}

# The processor's per-shard snapshots (write-behind): one small object per Kinesis shard,
# rewritten every batch with If-Match. Not the archive: Object Lock would keep every version.
module "state" {
  source        = "../bucket"
  name          = "${var.name}-state-${data.aws_caller_identity.current.account_id}"
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy
  tls_only      = var.tls_only
  lifecycle_rules = [{
    # each batch leaves the snapshot before it as a noncurrent version: kept a day (to look back), then gone
    id                         = "previous-snapshots"
    noncurrent_expiration_days = 1
  }]
  tags = var.tags
}

resource "aws_timestreamwrite_database" "this" {
  count         = var.enable_timestream ? 1 : 0
  database_name = "${var.name}-telemetry"
  kms_key_id    = var.kms_key_arn
  tags          = var.tags
}

resource "aws_timestreamwrite_table" "this" {
  count         = var.enable_timestream ? 1 : 0
  database_name = aws_timestreamwrite_database.this[0].database_name
  table_name    = "readings"

  retention_properties {
    memory_store_retention_period_in_hours  = var.timestream_memory_hours
    magnetic_store_retention_period_in_days = var.timestream_magnetic_days
  }

  tags = var.tags
}
