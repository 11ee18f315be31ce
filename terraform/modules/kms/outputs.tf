output "arn" {
  description = "ARN of the key."
  value       = aws_kms_key.this.arn
}

output "alias" {
  description = "Alias of the key."
  value       = aws_kms_alias.this.name
}

output "policy" {
  description = "The key policy."
  value       = aws_kms_key.this.policy
}
