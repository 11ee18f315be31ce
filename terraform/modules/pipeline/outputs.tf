data "aws_region" "current" {}

output "name_prefix" {
  description = "Prefix of every resource name."
  value       = local.name
}

output "stream_name" {
  description = "Telemetry Kinesis stream."
  value       = module.stream.name
}

output "tables" {
  description = "DynamoDB tables by role."
  value       = module.storage.table_names
}

output "archive_bucket" {
  description = "Raw-record archive bucket."
  value       = module.storage.archive_bucket
}

output "alerts_topic_arn" {
  description = "SNS topic of alerts."
  value       = module.observability.alerts_topic_arn
}

output "api_url" {
  description = "Base URL of the analytics API."
  value       = module.api.url
}

output "api_key_id" {
  description = "ID of the default API key."
  value       = module.api.api_key_id
}

output "iot_endpoint" {
  description = "MQTT endpoint for devices."
  value       = module.iot.endpoint
}

output "iot_policy_name" {
  description = "IoT policy to attach to device certificates."
  value       = module.iot.policy_name
}

output "topic_filter" {
  description = "Telemetry topic filter of the rule (devices publish through Basic Ingest: $aws/rules/<telemetry_rule_name>/<this filter>)."
  value       = module.iot.topic_filter
}

output "telemetry_rule_name" {
  description = "The telemetry topic rule: devices publish to $aws/rules/<this>/<topic prefix>/<thing>/telemetry (Basic Ingest; iotpm simulate --rule <this>)."
  value       = module.iot.rule_name
}

output "processor_function_name" {
  description = "Processor Lambda."
  value       = module.processor.function_name
}

output "compaction_function_name" {
  description = "The archive's Parquet compaction Lambda (run hourly by EventBridge Scheduler)."
  value       = module.compaction.function_name
}

output "api_function_name" {
  description = "API Lambda."
  value       = module.api.function_name
}

output "on_failure_queue_url" {
  description = "Processor on-failure queue."
  value       = module.processor.on_failure_queue_url
}

output "timestream" {
  description = "Timestream database and table (empty when disabled)."
  value       = { database = module.storage.timestream_database, table = module.storage.timestream_table }
}

output "region" {
  description = "Region the environment runs in (the Lambdas' AWS_REGION)."
  value       = data.aws_region.current.name
}

output "processor_environment" {
  description = "IOTPM_* settings of the processor, as set on the function."
  value       = module.processor.environment
}

output "rule_errors_bucket" {
  description = "Bucket of the messages the IoT rule could not put on the stream: iotpm replay --bucket <this> --stream <stream_name> puts them back."
  value       = module.iot.errors_bucket
}

output "buckets" {
  description = "Every bucket of the environment by role (all made by modules/bucket): name, TLS-only, force_destroy, encryption, public access."
  value       = merge(module.storage.buckets, module.analytics.buckets, module.iot.buckets)
}

# -- the analytics layer ------------------------------------------------------------

output "analytics" {
  description = "Athena workgroup, Glue database and tables, results bucket, named query ids, report function, alert topics and route queues."
  value = {
    workgroup       = module.analytics.workgroup
    database        = module.analytics.database
    tables          = module.analytics.tables
    results_bucket  = module.analytics.results_bucket
    named_query_ids = module.analytics.named_query_ids
    report_function = module.report.function_name
    machine_topic   = module.alerting.machine_topic_arn
    pipeline_topic  = module.alerting.pipeline_topic_arn
    route_queues    = module.alerting.route_queue_urls
    reports         = module.report.reports_location
  }
}
