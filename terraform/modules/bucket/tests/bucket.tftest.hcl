# Offline tests of the one bucket module every iotpm bucket is made with (mocked AWS provider).

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::iotpm-test-things-123456789012" }
  }
}

variables {
  name        = "iotpm-test-things-123456789012"
  kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  lifecycle_rules = [
    { id = "tiering", transitions = { STANDARD_IA = 30, GLACIER = 90 }, noncurrent_expiration_days = 1 },
    { id = "results", prefix = "results/", expiration_days = 30 },
  ]
}

run "a_bucket_is_private_encrypted_versioned_and_tls_only_by_default" {
  command = apply

  assert {
    condition = output.tls_only && jsondecode(output.policy).Statement == [{
      Sid       = "DenyInsecureTransport", Effect = "Deny", Principal = "*", Action = "s3:*",
      Resource  = ["arn:aws:s3:::iotpm-test-things-123456789012", "arn:aws:s3:::iotpm-test-things-123456789012/*"],
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
    error_message = "Every request without TLS is denied, on the bucket and its objects."
  }
  assert {
    condition     = output.public_access_blocked && output.sse_algorithm == "aws:kms" && output.versioning == "Enabled"
    error_message = "Public access blocked, SSE-KMS, versioned."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == var.kms_key_arn
    error_message = "Encrypted with the given key."
  }
  assert {
    condition     = !output.force_destroy && !aws_s3_bucket.this.object_lock_enabled && length(aws_s3_bucket_object_lock_configuration.this) == 0
    error_message = "No force_destroy and no Object Lock unless asked for."
  }
  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs are off (the owner owns every object)."
  }
}

run "lifecycle_rules_are_written_as_given" {
  command = apply

  assert {
    condition = (
      aws_s3_bucket_lifecycle_configuration.this.rule[0].id == "abort-incomplete-uploads" &&
      aws_s3_bucket_lifecycle_configuration.this.rule[0].abort_incomplete_multipart_upload[0].days_after_initiation == 1 &&
      length(aws_s3_bucket_lifecycle_configuration.this.rule[0].expiration) == 0
    )
    error_message = "Every bucket aborts incomplete uploads (after a day by default), and that rule expires nothing."
  }
  assert {
    condition = (
      aws_s3_bucket_lifecycle_configuration.this.rule[1].id == "tiering" && aws_s3_bucket_lifecycle_configuration.this.rule[1].status == "Enabled" &&
      { for t in aws_s3_bucket_lifecycle_configuration.this.rule[1].transition : t.storage_class => t.days } == { STANDARD_IA = 30, GLACIER = 90 } &&
      aws_s3_bucket_lifecycle_configuration.this.rule[1].noncurrent_version_expiration[0].noncurrent_days == 1 &&
      length(aws_s3_bucket_lifecycle_configuration.this.rule[1].expiration) == 0
    )
    error_message = "A whole-bucket rule: its transitions and noncurrent expiry, no expiry."
  }
  assert {
    condition = (
      aws_s3_bucket_lifecycle_configuration.this.rule[2].id == "results" && aws_s3_bucket_lifecycle_configuration.this.rule[2].filter[0].prefix == "results/" &&
      aws_s3_bucket_lifecycle_configuration.this.rule[2].expiration[0].days == 30 &&
      length(aws_s3_bucket_lifecycle_configuration.this.rule[2].transition) == 0 &&
      length(aws_s3_bucket_lifecycle_configuration.this.rule[2].abort_incomplete_multipart_upload) == 0
    )
    error_message = "A prefix rule: its filter and expiry, nothing else."
  }
}

run "object_lock_and_force_destroy_when_asked" {
  command = apply
  variables {
    object_lock   = { mode = "COMPLIANCE", days = 365 }
    force_destroy = true
    tls_only      = false
  }

  assert {
    condition     = aws_s3_bucket.this.object_lock_enabled && aws_s3_bucket_object_lock_configuration.this[0].rule[0].default_retention[0].mode == "COMPLIANCE" && aws_s3_bucket_object_lock_configuration.this[0].rule[0].default_retention[0].days == 365
    error_message = "Object Lock with its default retention."
  }
  assert {
    condition     = output.force_destroy && !output.tls_only && output.policy == "" && length(aws_s3_bucket_policy.this) == 0
    error_message = "force_destroy on; with tls_only off (the local emulator) there is no policy at all."
  }
}

run "object_lock_without_default_retention" {
  command = apply
  variables {
    object_lock = { mode = "NONE", days = 1 }
  }

  assert {
    condition     = aws_s3_bucket.this.object_lock_enabled && length(aws_s3_bucket_object_lock_configuration.this) == 0 && output.object_lock == null
    error_message = "NONE: Object Lock on (it cannot be added later), no default retention."
  }
}

run "a_bucket_without_lifecycle_is_refused" {
  command = plan
  variables {
    lifecycle_rules = []
  }
  expect_failures = [var.lifecycle_rules]
}

run "standard_ia_before_30_days_is_refused" {
  command = plan
  variables {
    lifecycle_rules = [{ id = "x", transitions = { STANDARD_IA = 7 } }]
  }
  expect_failures = [var.lifecycle_rules]
}
