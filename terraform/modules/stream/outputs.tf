output "name" {
  description = "Name of the telemetry stream."
  value       = aws_kinesis_stream.this.name
}

output "arn" {
  description = "ARN of the telemetry stream."
  value       = aws_kinesis_stream.this.arn
}

output "encryption_type" {
  description = "Encryption of the stream (KMS)."
  value       = aws_kinesis_stream.this.encryption_type
}

output "mode" {
  description = "Capacity mode of the stream (ON_DEMAND or PROVISIONED)."
  value       = aws_kinesis_stream.this.stream_mode_details[0].stream_mode
}

output "shard_count" {
  description = "Shards of a PROVISIONED stream (null on demand)."
  value       = aws_kinesis_stream.this.shard_count
}
