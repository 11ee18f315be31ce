# One S3 bucket as every iotpm bucket is made: versioned, SSE-KMS with the environment's
# key, every public access blocked, owner-enforced objects, a TLS-only policy, lifecycle
# rules and optional Object Lock. Every bucket of the project is this module, so the
# copies cannot drift (a test in tests/unit holds terraform/ to it).

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV2_AWS_62:event notifications are the caller's choice; no iotpm bucket has a consumer of object events
  # checkov:skip=CKV_AWS_18:object-level access is audited with CloudTrail data events (an account-level choice), not a log bucket per bucket
  # checkov:skip=CKV_AWS_144:cross-region replication doubles storage cost and may break data residency; versioning (and Object Lock where set) protect the objects
  bucket              = var.name
  object_lock_enabled = var.object_lock != null
  force_destroy       = var.force_destroy
  tags                = var.tags
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  # checkov:skip=CKV_AWS_300:the first rule below aborts incomplete uploads on the whole bucket (tests/bucket.tftest.hcl holds it); checkov does not read a static rule beside dynamic ones
  bucket = aws_s3_bucket.this.id

  # every bucket: parts of uploads that never completed are billed until removed
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_upload_days
    }
  }

  dynamic "rule" {
    for_each = var.lifecycle_rules
    content {
      id     = rule.value.id
      status = "Enabled"

      dynamic "filter" {
        for_each = rule.value.prefix == null ? [] : [rule.value.prefix]
        content {
          prefix = filter.value
        }
      }
      # no prefix: the whole bucket
      dynamic "filter" {
        for_each = rule.value.prefix == null ? [1] : []
        content {}
      }
      dynamic "transition" {
        for_each = rule.value.transitions
        content {
          days          = transition.value
          storage_class = transition.key
        }
      }
      dynamic "noncurrent_version_transition" {
        for_each = rule.value.noncurrent_transitions
        content {
          noncurrent_days = noncurrent_version_transition.value
          storage_class   = noncurrent_version_transition.key
        }
      }
      dynamic "expiration" {
        for_each = rule.value.expiration_days == null ? [] : [rule.value.expiration_days]
        content {
          days = expiration.value
        }
      }
      # The bucket is versioned: an expired object only gets a delete marker, and its data
      # stays as a noncurrent version until this removes it.
      dynamic "noncurrent_version_expiration" {
        for_each = rule.value.noncurrent_expiration_days == null ? [] : [rule.value.noncurrent_expiration_days]
        content {
          noncurrent_days = noncurrent_version_expiration.value
        }
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_object_lock_configuration" "this" {
  count  = var.object_lock == null ? 0 : (var.object_lock.mode == "NONE" ? 0 : 1)
  bucket = aws_s3_bucket.this.id
  rule {
    default_retention {
      mode = var.object_lock.mode
      days = var.object_lock.days
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

locals {
  arns = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
  statements = var.tls_only ? [{
    Sid       = "DenyInsecureTransport"
    Effect    = "Deny"
    Principal = "*"
    Action    = "s3:*"
    Resource  = local.arns
    Condition = { Bool = { "aws:SecureTransport" = "false" } }
  }] : []
}

resource "aws_s3_bucket_policy" "this" {
  count  = length(local.statements) > 0 ? 1 : 0
  bucket = aws_s3_bucket.this.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.statements })
  # S3 refuses a policy while the public access block is being set
  depends_on = [aws_s3_bucket_public_access_block.this]
}
