output "name" {
  description = "Bucket name."
  value       = aws_s3_bucket.this.bucket
}

output "arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.this.arn
}

output "policy" {
  description = "The bucket policy (JSON; empty when there is none)."
  value       = length(aws_s3_bucket_policy.this) > 0 ? aws_s3_bucket_policy.this[0].policy : ""
}

output "tls_only" {
  description = "Whether the policy denies every request without TLS."
  value = anytrue([for s in local.statements : (
    s.Effect == "Deny" && s.Principal == "*" && s.Action == "s3:*" && try(s.Condition.Bool["aws:SecureTransport"], "") == "false"
    && toset(s.Resource) == toset(local.arns)
  )])
}

output "sse_algorithm" {
  description = "Default encryption of the bucket."
  value       = one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].sse_algorithm
}

output "public_access_blocked" {
  description = "Whether all four public access blocks are on."
  value = alltrue([
    aws_s3_bucket_public_access_block.this.block_public_acls, aws_s3_bucket_public_access_block.this.block_public_policy,
    aws_s3_bucket_public_access_block.this.ignore_public_acls, aws_s3_bucket_public_access_block.this.restrict_public_buckets,
  ])
}

output "versioning" {
  description = "Versioning status."
  value       = aws_s3_bucket_versioning.this.versioning_configuration[0].status
}

output "force_destroy" {
  description = "Whether destroy may delete the bucket with its objects."
  value       = aws_s3_bucket.this.force_destroy
}

output "lifecycle_rules" {
  description = "The lifecycle rules as given (for tests and audits)."
  value       = var.lifecycle_rules
}

output "object_lock" {
  description = "Default Object Lock retention (null when none)."
  value       = var.object_lock == null ? null : (var.object_lock.mode == "NONE" ? null : var.object_lock)
}
