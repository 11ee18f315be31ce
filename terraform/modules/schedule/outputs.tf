output "role_arn" {
  description = "ARN of the role the scheduler assumes."
  value       = aws_iam_role.this.arn
}

output "role_trust" {
  description = "The role's trust policy (the scheduler, from this account only)."
  value       = aws_iam_role.this.assume_role_policy
}

output "policy_json" {
  description = "The role's inline policy (invoke the function, decrypt the schedules)."
  value       = aws_iam_role_policy.this.policy
}

output "schedules" {
  description = "Each schedule by key: its name, expression, time zone, target function, input and flexible window mode."
  value = { for k, s in aws_scheduler_schedule.this : k => {
    name        = s.name
    expression  = s.schedule_expression
    timezone    = s.schedule_expression_timezone
    target_arn  = s.target[0].arn
    input       = s.target[0].input
    window_mode = s.flexible_time_window[0].mode
  } }
}
