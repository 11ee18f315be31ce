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
