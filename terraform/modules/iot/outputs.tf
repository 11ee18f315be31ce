output "endpoint" {
  description = "MQTT endpoint devices connect to (port 8883, or 443 with ALPN)."
  value       = data.aws_iot_endpoint.this.endpoint_address
}

output "policy_name" {
  description = "IoT policy to attach to each device certificate."
  value       = aws_iot_policy.device.name
}

output "policy_json" {
  description = "The device policy document (for review and tests)."
  value       = aws_iot_policy.device.policy
}

output "thing_names" {
  description = "Things of the fleet."
  value       = keys(aws_iot_thing.this)
}

output "topic_filter" {
  description = "Topic filter of the telemetry rule."
  value       = "${var.topic_prefix}/+/telemetry"
}

output "rule_name" {
  description = "Name of the telemetry topic rule."
  value       = aws_iot_topic_rule.this.name
}

output "rule_role_trust" {
  description = "Trust policy of the role the topic rule assumes."
  value       = aws_iam_role.rule.assume_role_policy
}
