environment         = "local"
region              = "eu-west-1"
availability_zones  = ["eu-west-1a", "eu-west-1b"]
lambda_architecture = "x86_64"
processor_zip       = "../../../lambda_build/out/processor-x86_64.zip"
api_zip             = "../../../lambda_build/out/api-x86_64.zip"
compaction_zip      = "../../../lambda_build/out/compaction-x86_64.zip"

# The emulator: archive disposable. Timestream off, as in every environment by default (AWS
# accounts made after 2025-06-20 cannot create it); the Terraform contract test applies
# this environment with enable_timestream = true, so its permissions and calls are covered.
enable_timestream     = false
object_lock_mode      = "GOVERNANCE"
object_lock_days      = 1
force_destroy_buckets = true  # disposable: the only environment where destroy deletes data
buckets_tls_only      = false # the emulator speaks plain HTTP; every other environment keeps the TLS-only policy on every bucket
log_retention_days    = 1
batch_size            = 10000 # the local poller reads the same
batching_window_s     = 0

# The local twin's fleet is the simulator's (iotpm simulate); things here are the demo set.
things = {
  "pump-0000"       = { device_type = "pump", site = "plant-1", line = "line-1" }
  "motor-0001"      = { device_type = "motor", site = "plant-1", line = "line-1" }
  "compressor-0002" = { device_type = "compressor", site = "plant-1", line = "line-2" }
}

# Alert routes: the twin's webhook receiver ({local_webhook}, started by iotpm local up)
# stands in for each line's chat channel (every alarm of the line) and its pager
# (critical only); critical raises also go to an SQS queue.
alert_routes = {
  line-1          = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-1", lines = ["line-1"], events = ["alarm_raised", "alarm_escalated", "alarm_cleared"] }
  line-2          = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-2", lines = ["line-2"], events = ["alarm_raised", "alarm_escalated", "alarm_cleared"] }
  line-3          = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-3", lines = ["line-3"], events = ["alarm_raised", "alarm_escalated", "alarm_cleared"] }
  line-4          = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-4", lines = ["line-4"], events = ["alarm_raised", "alarm_escalated", "alarm_cleared"] }
  line-1-critical = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-1-critical", lines = ["line-1"], severities = ["critical"] }
  line-2-critical = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-2-critical", lines = ["line-2"], severities = ["critical"] }
  line-3-critical = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-3-critical", lines = ["line-3"], severities = ["critical"] }
  line-4-critical = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/line-4-critical", lines = ["line-4"], severities = ["critical"] }
  reports         = { topic = "machine", protocol = "http", endpoint = "{local_webhook}/hooks/reports", events = ["report"] }
  pipeline        = { topic = "pipeline", protocol = "http", endpoint = "{local_webhook}/hooks/pipeline" }
  critical-raises = { topic = "machine", protocol = "sqs", severities = ["critical"], events = ["alarm_raised", "alarm_escalated"] }
}
compact_interval_s = 10 # write-behind: each device compacted every 10 s (a tenth of a shard per second), so a short twin run shows the tables filled
