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

resource "aws_s3_bucket" "archive" {
  # checkov:skip=CKV2_AWS_62:nothing consumes archive events; the processor writes, auditors read
  # checkov:skip=CKV_AWS_18:object-level access is audited with CloudTrail data events (an account-level choice), not a second log bucket per environment
  # checkov:skip=CKV_AWS_144:cross-region replication doubles storage cost and may break data residency; Object Lock + versioning protect the records
  bucket              = "${var.name}-archive-${data.aws_caller_identity.current.account_id}"
  object_lock_enabled = true
  force_destroy       = var.force_destroy_archive
  tags                = var.tags
}

resource "aws_s3_bucket_versioning" "archive" {
  bucket = aws_s3_bucket.archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    id     = "tiering"
    status = "Enabled"
    filter {}

    transition {
      days          = var.archive_ia_days
      storage_class = "STANDARD_IA"
    }
    transition {
      days          = var.archive_glacier_days
      storage_class = "GLACIER"
    }
    noncurrent_version_transition {
      noncurrent_days = var.archive_ia_days
      storage_class   = "STANDARD_IA"
    }
    dynamic "expiration" {
      for_each = var.archive_expiration_days > 0 ? [1] : []
      content {
        days = var.archive_expiration_days
      }
    }
    # The bucket is versioned: an expired object only gets a delete marker, and its data
    # stays as a noncurrent version until this removes it.
    dynamic "noncurrent_version_expiration" {
      for_each = var.archive_expiration_days > 0 ? [1] : []
      content {
        noncurrent_days = var.archive_noncurrent_days
      }
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.archive]
}

resource "aws_s3_bucket_object_lock_configuration" "archive" {
  count  = var.object_lock_mode == "NONE" ? 0 : 1
  bucket = aws_s3_bucket.archive.id
  rule {
    default_retention {
      mode = var.object_lock_mode
      days = var.object_lock_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.archive]
}

resource "aws_s3_bucket_policy" "archive" {
  count  = var.tls_only ? 1 : 0
  bucket = aws_s3_bucket.archive.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.archive]
}

# The processor's per-shard snapshots (write-behind): one small object per Kinesis shard,
# rewritten every batch with If-Match. Not the archive: Object Lock would keep every version.
resource "aws_s3_bucket" "state" {
  # checkov:skip=CKV2_AWS_62:nothing consumes snapshot events; only the processor reads and writes them
  # checkov:skip=CKV_AWS_18:object-level access is audited with CloudTrail data events (an account-level choice), not a second log bucket per environment
  # checkov:skip=CKV_AWS_144:a snapshot is rebuilt from the tables and the log if lost; replicating an object rewritten every batch costs more than it saves
  bucket        = "${var.name}-state-${data.aws_caller_identity.current.account_id}"
  force_destroy = true
  tags          = var.tags
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    id     = "previous-snapshots"
    status = "Enabled"
    filter {}
    # each batch leaves the snapshot before it as a noncurrent version: kept a day (to look back), then gone
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  depends_on = [aws_s3_bucket_versioning.state]
}

resource "aws_s3_bucket_policy" "state" {
  count  = var.tls_only ? 1 : 0
  bucket = aws_s3_bucket.state.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.state]
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
