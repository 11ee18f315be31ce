output "function_name" {
  description = "The report Lambda."
  value       = module.function.name
}

output "function_arn" {
  description = "ARN of the report Lambda."
  value       = module.function.arn
}

output "schedule_names" {
  description = "EventBridge Scheduler schedules by scope."
  value       = { for k, s in module.schedule.schedules : k => s.name }
}

output "reports_location" {
  description = "Where the reports are written (s3://bucket/reports/<scope>/<day>/report.{html,json})."
  value       = "s3://${var.results_bucket}/reports/"
}

output "policy_json" {
  description = "The report function's IAM policy (least privilege: asserted in tests/)."
  value       = local.policy_json
}

output "vpc_subnet_ids" {
  description = "Subnets the report function runs in (empty when it runs outside the VPC)."
  value       = module.function.vpc_subnet_ids
}
