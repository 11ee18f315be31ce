output "name" {
  description = "Function name."
  value       = aws_lambda_function.this.function_name
}

output "arn" {
  description = "Function ARN."
  value       = aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "ARN API Gateway uses to invoke the function."
  value       = aws_lambda_function.this.invoke_arn
}

output "role_name" {
  description = "Name of the function's role."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the function's role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "The function's log group."
  value       = module.log_group.name
}

output "reserved_concurrency" {
  description = "Reserved concurrency of the function (-1: none)."
  value       = aws_lambda_function.this.reserved_concurrent_executions
}

output "eni_policy" {
  description = "The role's policy for the function's network interfaces (in place of the managed AWSLambdaVPCAccessExecutionRole; null outside the VPC)."
  value       = one(aws_iam_role_policy.eni[*].policy)
}

output "tracing_mode" {
  description = "X-Ray tracing mode of the function (Active or PassThrough)."
  value       = aws_lambda_function.this.tracing_config[0].mode
}

output "vpc_subnet_ids" {
  description = "Subnets the function runs in (empty when it runs outside the VPC)."
  value       = flatten([for c in aws_lambda_function.this.vpc_config : c.subnet_ids])
}
