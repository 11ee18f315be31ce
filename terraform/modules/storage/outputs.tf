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
  value       = module.archive.name
}

output "archive_bucket_arn" {
  description = "ARN of the raw-record archive bucket."
  value       = module.archive.arn
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
  value       = module.archive.sse_algorithm
}

output "public_access_blocked" {
  description = "Whether all four public access blocks are on (archive and state buckets)."
  value       = module.archive.public_access_blocked && module.state.public_access_blocked
}

output "archive_policy" {
  description = "Bucket policy of the archive."
  value       = module.archive.policy
}

output "lifecycle_transitions" {
  description = "Storage class => days after which current objects move there."
  value       = { for class, days in one(module.archive.lifecycle_rules).transitions : class => days }
}

output "object_lock" {
  description = "Default Object Lock retention of the archive (null when off)."
  value       = module.archive.object_lock
}

output "noncurrent_expiration_days" {
  description = "Days after which noncurrent archive versions are deleted (null when the archive never expires)."
  value       = one(module.archive.lifecycle_rules).noncurrent_expiration_days
}

output "state_bucket" {
  description = "Name of the bucket of the processor's per-shard snapshots (write-behind)."
  value       = module.state.name
}

output "state_bucket_arn" {
  description = "ARN of the bucket of the processor's per-shard snapshots."
  value       = module.state.arn
}

output "buckets" {
  description = "The module's buckets by role, as modules/bucket reports them (name, TLS-only, force_destroy, encryption)."
  value = { for role, b in { archive = module.archive, state = module.state } : role => {
    name = b.name, tls_only = b.tls_only, force_destroy = b.force_destroy, sse_algorithm = b.sse_algorithm, public_access_blocked = b.public_access_blocked
  } }
}
