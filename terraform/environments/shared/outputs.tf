output "name_prefix" {
  description = "Prefix of every resource name."
  value       = module.pipeline.name_prefix
}

output "stream_name" {
  description = "Telemetry Kinesis stream."
  value       = module.pipeline.stream_name
}

output "tables" {
  description = "DynamoDB tables by role."
  value       = module.pipeline.tables
}

output "archive_bucket" {
  description = "Raw-record archive bucket."
  value       = module.pipeline.archive_bucket
}

output "alerts_topic_arn" {
  description = "SNS topic of alerts."
  value       = module.pipeline.alerts_topic_arn
}

output "api_url" {
  description = "Base URL of the analytics API."
  value       = module.pipeline.api_url
}

output "api_key_id" {
  description = "ID of the default API key."
  value       = module.pipeline.api_key_id
}

output "iot_endpoint" {
  description = "MQTT endpoint for devices."
  value       = module.pipeline.iot_endpoint
}

output "iot_policy_name" {
  description = "IoT policy to attach to device certificates."
  value       = module.pipeline.iot_policy_name
}

output "rule_errors_bucket" {
  description = "Messages the IoT rule could not put on the stream: iotpm replay --bucket <this> --stream <stream_name>."
  value       = module.pipeline.rule_errors_bucket
}

output "topic_filter" {
  description = "Telemetry topic filter (devices publish to <project>/<thing>/telemetry)."
  value       = module.pipeline.topic_filter
}

output "processor_function_name" {
  description = "Processor Lambda."
  value       = module.pipeline.processor_function_name
}

output "compaction_function_name" {
  description = "The archive's Parquet compaction Lambda (run hourly by EventBridge Scheduler)."
  value       = module.pipeline.compaction_function_name
}

output "api_function_name" {
  description = "API Lambda."
  value       = module.pipeline.api_function_name
}

output "on_failure_queue_url" {
  description = "Processor on-failure queue."
  value       = module.pipeline.on_failure_queue_url
}

output "timestream" {
  description = "Timestream database and table (empty when disabled)."
  value       = module.pipeline.timestream
}

output "region" {
  description = "Region the environment runs in (the Lambdas' AWS_REGION)."
  value       = module.pipeline.region
}

output "processor_environment" {
  description = "IOTPM_* settings of the processor, as set on the function."
  value       = module.pipeline.processor_environment
}

# -- the analytics layer ------------------------------------------------------------

output "analytics" {
  description = "Athena workgroup, Glue database and tables, results bucket, named query ids, report function, alert topics and route queues."
  value       = module.pipeline.analytics
}
