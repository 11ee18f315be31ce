output "url" {
  description = "Base URL of the API (append /devices, /anomalies, ...)."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "api_key_id" {
  description = "ID of the default API key (read the value with: aws apigateway get-api-key --include-value --api-key <id>)."
  value       = aws_api_gateway_api_key.this.id
}

output "rest_api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "stage_name" {
  description = "Stage name."
  value       = aws_api_gateway_stage.this.stage_name
}

output "function_name" {
  description = "API function name."
  value       = module.function.name
}

output "policy_json" {
  description = "The API function's read-only policy (for review and tests)."
  value       = local.policy_json
}

output "account_logging_role_trust" {
  description = "Trust policy of the API Gateway CloudWatch role (null when manage_account_logging_role is false)."
  value       = one(aws_iam_role.account_logging[*].assume_role_policy)
}

output "account_logging_role_arn" {
  description = "The CloudWatch role set on the account's API Gateway settings (null when not managed here)."
  value       = one(aws_api_gateway_account.this[*].cloudwatch_role_arn)
}

output "xray_sampling_rate" {
  description = "Fraction of the stage's requests X-Ray traces (null: X-Ray's default rule)."
  value       = one(aws_xray_sampling_rule.stage[*].fixed_rate)
}

output "xray_sampling_rule" {
  description = "The stage's X-Ray sampling rule as X-Ray matches it: service name and type, fixed rate (null: X-Ray's default rule)."
  value       = one([for r in aws_xray_sampling_rule.stage : { service_name = r.service_name, service_type = r.service_type, fixed_rate = r.fixed_rate }])
}
