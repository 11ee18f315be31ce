# The Athena workgroup: results encrypted with the environment's key in their own
# bucket, settings enforced (a client cannot send results elsewhere or unencrypted),
# a per-query scan cutoff, and the named queries.

data "aws_caller_identity" "current" {}

resource "aws_s3_bucket" "results" {
  # checkov:skip=CKV2_AWS_62:nothing consumes query-result events
  # checkov:skip=CKV_AWS_18:access is audited with CloudTrail data events (an account-level choice), not a log bucket per results bucket
  # checkov:skip=CKV_AWS_144:query results are re-creatable from the archive; replicating them buys nothing
  bucket        = "${var.name}-athena-results-${data.aws_caller_identity.current.account_id}"
  force_destroy = var.force_destroy_results
  tags          = var.tags
}

resource "aws_s3_bucket_versioning" "results" {
  bucket = aws_s3_bucket.results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "results" {
  bucket                  = aws_s3_bucket.results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    id     = "expire-results"
    status = "Enabled"
    filter {
      prefix = "results/" # the fleet reports under reports/ are kept
    }
    expiration {
      days = var.results_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }
  rule {
    id     = "abort-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = "${var.name}-analytics"
  description   = "Named queries over the ${var.name} archive"
  force_destroy = var.force_destroy_results

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = "s3://${aws_s3_bucket.results.bucket}/results/"
      expected_bucket_owner = data.aws_caller_identity.current.account_id

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-analytics" })
}

resource "aws_athena_named_query" "this" {
  for_each    = var.named_queries
  name        = each.key
  description = substr(each.value.description, 0, 1024)
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = each.value.query
}
