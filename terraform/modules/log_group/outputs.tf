output "name" {
  description = "Name of the log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "arn" {
  description = "ARN of the log group."
  value       = aws_cloudwatch_log_group.this.arn
}

output "writer_role_arn" {
  description = "ARN of the role the writing service assumes (null without a writer)."
  value       = one(aws_iam_role.writer[*].arn)
}

output "writer_role_trust" {
  description = "Trust policy of the writer's role (null without a writer)."
  value       = one(aws_iam_role.writer[*].assume_role_policy)
}
