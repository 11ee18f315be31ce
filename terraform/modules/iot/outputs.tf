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

output "errors_bucket" {
  description = "Bucket the rule's error action writes failed messages to (iotpm replay reads it)."
  value       = module.errors.name
}

output "error_prefix" {
  description = "Key prefix of the failed messages in errors_bucket (replayed ones move under replayed/)."
  value       = local.error_prefix
}

output "error_action" {
  description = "The topic rule's error action (for tests and audits)."
  value       = one(aws_iot_topic_rule.this.error_action)
}

output "rule_role_policy" {
  description = "The policy of the role the topic rule assumes."
  value       = aws_iam_role_policy.rule.policy
}

output "buckets" {
  description = "The module's buckets by role, as modules/bucket reports them (name, TLS-only, force_destroy, encryption)."
  value = { rule_errors = {
    name          = module.errors.name, tls_only = module.errors.tls_only, force_destroy = module.errors.force_destroy,
    sse_algorithm = module.errors.sse_algorithm, public_access_blocked = module.errors.public_access_blocked
  } }
}
