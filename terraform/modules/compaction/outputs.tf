output "function_name" {
  description = "The compaction Lambda."
  value       = module.function.name
}

output "function_arn" {
  description = "ARN of the compaction Lambda."
  value       = module.function.arn
}

output "schedule_name" {
  description = "The EventBridge Scheduler schedule that runs the job."
  value       = module.schedule.schedules["archive"].name
}

output "table_names" {
  description = "The Glue tables the named queries read beside raw_records and quarantine_records."
  value       = [aws_glue_catalog_table.compacted.name, aws_glue_catalog_table.state.name]
}

output "policy_json" {
  description = "The compaction function's IAM policy (least privilege: asserted in tests/)."
  value       = local.policy_json
}

output "idle_shards_schedule_name" {
  description = "The schedule that runs the idle-shard job on the same function (null without write-behind)."
  value       = try(module.schedule.schedules["idle_shards"].name, null)
}
