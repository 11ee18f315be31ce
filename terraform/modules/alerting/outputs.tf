output "machine_topic_arn" {
  description = "The machine-alarm topic (the processor publishes here)."
  value       = aws_sns_topic.machine.arn
}

output "pipeline_topic_arn" {
  description = "The pipeline-alarm topic (CloudWatch alarm actions)."
  value       = var.pipeline_topic_arn
}

output "route_queue_urls" {
  description = "SQS queues of the sqs routes, by route."
  value       = { for k, q in aws_sqs_queue.route : k => q.url }
}

output "filter_policies" {
  description = "Each route's SNS filter policy (null: everything on its topic)."
  value       = { for k, s in aws_sns_topic_subscription.route : k => s.filter_policy }
}
