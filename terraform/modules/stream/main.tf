# The telemetry stream: ordered per device (the partition key is the device id).

resource "aws_kinesis_stream" "this" {
  name             = "${var.name}-telemetry"
  shard_count      = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  tags = var.tags
}
