environment         = "staging"
region              = "eu-west-1"
availability_zones  = ["eu-west-1a", "eu-west-1b"]
vpc_cidr            = "10.41.0.0/16"
lambda_architecture = "arm64"
processor_zip       = "../../../lambda_build/out/processor-arm64.zip"
api_zip             = "../../../lambda_build/out/api-arm64.zip"
compaction_zip      = "../../../lambda_build/out/compaction-arm64.zip"

# Like prod in shape, smaller in size and retention.
stream_mode             = "ON_DEMAND"
processor_memory_mb     = 1769
batch_size              = 5000
object_lock_mode        = "GOVERNANCE"
object_lock_days        = 30
archive_expiration_days = 400
log_retention_days      = 30
api_quota_per_day       = 50000

things = {
  "pump-0000"       = { device_type = "pump", site = "plant-1", line = "line-1" }
  "motor-0001"      = { device_type = "motor", site = "plant-1", line = "line-1" }
  "compressor-0002" = { device_type = "compressor", site = "plant-1", line = "line-2" }
}

# Alert routes (modules/alerting): a queue for tooling; add chat webhooks and emails here, e.g.
#   line-1-chat = { topic = "machine", protocol = "https", endpoint = "https://chat.example/hooks/line-1", lines = ["line-1"] }
#   on-call     = { topic = "machine", protocol = "email", endpoint = "oncall@example.com", severities = ["critical"] }
alert_routes = {
  critical-raises = { topic = "machine", protocol = "sqs", severities = ["critical"], events = ["alarm_raised", "alarm_escalated"] }
  pipeline        = { topic = "pipeline", protocol = "sqs" }
}
