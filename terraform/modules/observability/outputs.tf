output "alerts_topic_arn" {
  description = "SNS topic of machine alerts and pipeline alarms."
  value       = aws_sns_topic.alerts.arn
}

output "alarm_names" {
  description = "CloudWatch alarms watching the pipeline."
  value       = [for a in aws_cloudwatch_metric_alarm.this : a.alarm_name]
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the pipeline."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "dashboard_body" {
  description = "The dashboard's JSON body (widgets with per-metric statistics)."
  value       = aws_cloudwatch_dashboard.this.dashboard_body
}

output "alarms" {
  description = "Alarm name suffix => namespace, metric, statistic and dimensions."
  value       = { for k, a in local.alarms : k => { namespace = a.namespace, metric = a.metric, stat = a.stat, dims = a.dims } }
}
