output "api_url" {
  description = "Base URL of the analytics API (send the key as x-api-key)."
  value       = module.pipeline.api_url
}

output "api_key_id" {
  description = "ID of the default API key (aws apigateway get-api-key --include-value --api-key <id>)."
  value       = module.pipeline.api_key_id
}

output "iot_endpoint" {
  description = "MQTT endpoint devices connect to."
  value       = module.pipeline.iot_endpoint
}

output "topic_filter" {
  description = "Devices publish to <project>/<thing>/telemetry."
  value       = module.pipeline.topic_filter
}
