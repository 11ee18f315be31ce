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
# - Batching window 2 s: the original requirement is end-to-end under 5 s, and a reading waits up
#   to the window before the processor sees it (then ~0.1-0.2 s a batch, the IoT rule and Kinesis
#   well under a second). A longer window is cheaper (every per-batch cost falls with it) but
#   weakens that guarantee: docs/cost.md lists it with the levers that do.
# - The report function outside the VPC (report_in_vpc = false): only its code calls Athena, so
#   the Athena interface endpoint (2 AZs, ~$16 a month) is not made. Outside the VPC it reaches
#   Athena, S3, DynamoDB and SNS over AWS's public endpoints with IAM and TLS and has no path into
#   the VPC. A security-posture choice (docs/deploy.md), not a delivery guarantee.
report_in_vpc          = false
stream_mode            = "PROVISIONED"
shard_count            = 1
processor_tracing      = "PassThrough"
api_xray_sampling_rate = 0.05
endpoint_az_count      = 2
processor_memory_mb    = 1769
batch_size             = 10000
batching_window_s      = 2
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
