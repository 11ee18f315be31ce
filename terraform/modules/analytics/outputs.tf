output "database" {
  description = "Glue database of the archive tables."
  value       = aws_glue_catalog_database.this.name
}

output "tables" {
  description = "Glue table names by role (raw_records, quarantine_records)."
  value       = { for k, t in aws_glue_catalog_table.this : k => t.name }
}

output "workgroup" {
  description = "Athena workgroup that runs the named queries (settings enforced)."
  value       = aws_athena_workgroup.this.name
}

output "workgroup_arn" {
  description = "ARN of the Athena workgroup."
  value       = aws_athena_workgroup.this.arn
}

output "results_bucket" {
  description = "Bucket of the encrypted query results."
  value       = module.results.name
}

output "results_bucket_arn" {
  description = "ARN of the query results bucket."
  value       = module.results.arn
}

output "named_query_ids" {
  description = "Athena named query ids by name."
  value       = { for k, q in aws_athena_named_query.this : k => q.id }
}

output "buckets" {
  description = "The module's buckets by role, as modules/bucket reports them (name, TLS-only, force_destroy, encryption)."
  value = { results = {
    name          = module.results.name, tls_only = module.results.tls_only, force_destroy = module.results.force_destroy,
    sse_algorithm = module.results.sse_algorithm, public_access_blocked = module.results.public_access_blocked
  } }
}

output "named_queries" {
  description = "The SQL of each named query, as Athena stores it."
  value       = { for k, q in aws_athena_named_query.this : k => q.query }
}
