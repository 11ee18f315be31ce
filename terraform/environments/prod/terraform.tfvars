environment         = "prod"
region              = "eu-west-1"
availability_zones  = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
vpc_cidr            = "10.42.0.0/16"
lambda_architecture = "arm64"
processor_zip       = "../../../lambda_build/out/processor-arm64.zip"
api_zip             = "../../../lambda_build/out/api-arm64.zip"
compaction_zip      = "../../../lambda_build/out/compaction-arm64.zip"

# Compliance: Object Lock in COMPLIANCE mode for a year, tables protected, long retention.
stream_retention_hours = 168

# Cost levers (docs/cost.md; benchmarks/cost.py reads them from here):
# - Kinesis provisioned: shards = ceil(2 x max(readings/s / 1,000, MB/s / 1)). The plant's fleet of
#   500 devices at one reading every 5 s is 100 readings/s of ~240 B (0.024 MB/s): 1 shard, at a tenth
#   of its 1,000 records/s (up to ~2,500 such devices keep the 2x headroom; add a shard beyond).
#   On demand would bill 4 shards' worth of batches and every record as 1 KB.
# - X-Ray: the processor passes through (a stream invocation carries no trace: no traces, same
#   metrics, logs and alarms); the API keeps Active tracing.
# - Interface endpoints in 2 of the 3 AZs: still up through the loss of one AZ; Lambdas in the
#   third reach them across AZs.
# - X-Ray on the API: a sampling rule traces 5 % of the stage's requests (X-Ray's default rule,
#   1 a second then 5 %, traces nearly all of prod's ~0.4 requests/s: ~$5 a month). Access logs,
#   metrics and alarms still see every request.
# - Batching window 10 s (was 2 s): a batch every 10 s instead of every 2 s, so a fifth of every
#   per-batch cost (the raw archive PUT, the snapshot GET and PUT, the batch-log write, the
#   invocation). A reading waits up to 10 s before the processor sees it: every alert leaves up to
#   10 s after its reading (was 2 s). Issue 28's targets are counted by the detector and still
#   hold: abrupt faults are raised a median 20 s after onset, 30 s with the window (target 60 s);
#   a limit crossing escalates within 3 readings, and pages at most 10 s after that reading.
stream_mode            = "PROVISIONED"
shard_count            = 1
processor_tracing      = "PassThrough"
api_xray_sampling_rate = 0.05
endpoint_az_count      = 2
processor_memory_mb    = 1769
batch_size             = 10000
batching_window_s      = 10
object_lock_mode       = "COMPLIANCE"
object_lock_days       = 365
deletion_protection    = true
log_retention_days     = 365
api_quota_per_day      = 1000000
alert_emails           = []

things = {}

# Alert routes (modules/alerting): per-line chat webhooks and the on-call address go here, e.g.
#   line-1-chat = { topic = "machine", protocol = "https", endpoint = "https://chat.example/hooks/line-1", lines = ["line-1"] }
#   on-call     = { topic = "machine", protocol = "email", endpoint = "oncall@example.com", severities = ["critical"] }
alert_routes = {
  critical-raises = { topic = "machine", protocol = "sqs", severities = ["critical"], events = ["alarm_raised", "alarm_escalated"] }
  warnings        = { topic = "machine", protocol = "sqs", severities = ["warning"] }
  pipeline        = { topic = "pipeline", protocol = "sqs" }
}
