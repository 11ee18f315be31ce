output "table_names" {
  description = "DynamoDB table names by role (readings, devices, anomalies, rollups)."
  value       = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "table_arns" {
  description = "DynamoDB table ARNs by role."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}

output "archive_bucket" {
  description = "Name of the raw-record archive bucket."
  value       = aws_s3_bucket.archive.bucket
}

output "archive_bucket_arn" {
  description = "ARN of the raw-record archive bucket."
  value       = aws_s3_bucket.archive.arn
}

output "timestream_database" {
  description = "Timestream database name (empty when disabled)."
  value       = var.enable_timestream ? aws_timestreamwrite_database.this[0].database_name : ""
}

output "timestream_table" {
  description = "Timestream table name (empty when disabled)."
  value       = var.enable_timestream ? aws_timestreamwrite_table.this[0].table_name : ""
}

output "timestream_table_arn" {
  description = "Timestream table ARN (empty when disabled)."
  value       = var.enable_timestream ? aws_timestreamwrite_table.this[0].arn : ""
}

output "tables_encryption" {
  description = "Server-side encryption of each table (for tests and audits)."
  value       = { for k, t in aws_dynamodb_table.this : k => { enabled = t.server_side_encryption[0].enabled, kms_key_arn = t.server_side_encryption[0].kms_key_arn } }
}

output "point_in_time_recovery" {
  description = "Whether every table has point-in-time recovery."
  value       = alltrue([for t in aws_dynamodb_table.this : t.point_in_time_recovery[0].enabled])
}

output "deletion_protection" {
  description = "Whether every table is protected from deletion."
  value       = alltrue([for t in aws_dynamodb_table.this : t.deletion_protection_enabled])
}

output "archive_sse_algorithm" {
  description = "Default encryption of the archive."
  value       = one(aws_s3_bucket_server_side_encryption_configuration.archive.rule).apply_server_side_encryption_by_default[0].sse_algorithm
}

output "public_access_blocked" {
  description = "Whether all four public access blocks are on."
  value = alltrue([
    aws_s3_bucket_public_access_block.archive.block_public_acls, aws_s3_bucket_public_access_block.archive.block_public_policy,
    aws_s3_bucket_public_access_block.archive.ignore_public_acls, aws_s3_bucket_public_access_block.archive.restrict_public_buckets,
  ])
}

output "archive_policy" {
  description = "Bucket policy of the archive."
  value       = var.tls_only ? aws_s3_bucket_policy.archive[0].policy : ""
}

output "lifecycle_transitions" {
  description = "Storage class => days after which current objects move there."
  value       = { for t in one(aws_s3_bucket_lifecycle_configuration.archive.rule).transition : t.storage_class => t.days }
}

output "object_lock" {
  description = "Default Object Lock retention of the archive (null when off)."
  value       = var.object_lock_mode == "NONE" ? null : { mode = var.object_lock_mode, days = var.object_lock_days }
}

output "noncurrent_expiration_days" {
  description = "Days after which noncurrent archive versions are deleted (null when the archive never expires)."
  value       = one([for e in one(aws_s3_bucket_lifecycle_configuration.archive.rule).noncurrent_version_expiration : e.noncurrent_days])
}

output "state_bucket" {
  description = "Name of the bucket of the processor's per-shard snapshots (write-behind)."
  value       = aws_s3_bucket.state.bucket
}

output "state_bucket_arn" {
  description = "ARN of the bucket of the processor's per-shard snapshots."
  value       = aws_s3_bucket.state.arn
}
