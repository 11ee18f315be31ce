output "function_name" {
  description = "Processor function name."
  value       = module.function.name
}

output "function_arn" {
  description = "Processor function ARN."
  value       = module.function.arn
}

output "role_name" {
  description = "Processor role name."
  value       = module.function.role_name
}

output "log_group_name" {
  description = "Processor log group."
  value       = module.function.log_group_name
}

output "on_failure_queue_url" {
  description = "Queue that receives batches the processor gave up on."
  value       = aws_sqs_queue.on_failure.url
}

output "on_failure_queue_name" {
  description = "Name of the on-failure queue."
  value       = aws_sqs_queue.on_failure.name
}

output "policy_json" {
  description = "The processor's least-privilege policy (for review and tests)."
  value       = local.policy_json
}

output "event_source_mapping_uuid" {
  description = "UUID of the Kinesis event source mapping."
  value       = aws_lambda_event_source_mapping.this.uuid
}

output "event_source_mapping" {
  description = "The Kinesis event source mapping's settings (for tests and audits)."
  value = {
    batch_size                     = aws_lambda_event_source_mapping.this.batch_size
    starting_position              = aws_lambda_event_source_mapping.this.starting_position
    function_response_types        = aws_lambda_event_source_mapping.this.function_response_types
    bisect_batch_on_function_error = aws_lambda_event_source_mapping.this.bisect_batch_on_function_error
    maximum_retry_attempts         = aws_lambda_event_source_mapping.this.maximum_retry_attempts
    maximum_record_age_in_seconds  = aws_lambda_event_source_mapping.this.maximum_record_age_in_seconds
    destination_config             = aws_lambda_event_source_mapping.this.destination_config
  }
}

output "environment" {
  description = "The IOTPM_* variables set on the function (what src/iotpm/composition.py reads)."
  value       = local.env
}

output "reserved_concurrency" {
  description = "Concurrency reserved for the processor (-1: none)."
  value       = module.function.reserved_concurrency
}

output "tracing_mode" {
  description = "X-Ray tracing mode of the processor (Active or PassThrough)."
  value       = module.function.tracing_mode
}

output "timeout_s" {
  description = "The processor's timeout in seconds: the longest a batch runs (the idle-shard job waits longer)."
  value       = var.timeout_s
}
