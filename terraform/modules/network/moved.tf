# The flow logs' group and role were resources of this module before modules/log_group made
# every service's log group one way.
moved {
  from = aws_cloudwatch_log_group.flow
  to   = module.flow_logs.aws_cloudwatch_log_group.this
}

moved {
  from = aws_iam_role.flow
  to   = module.flow_logs.aws_iam_role.writer[0]
}

moved {
  from = aws_iam_role_policy.flow
  to   = module.flow_logs.aws_iam_role_policy.writer[0]
}
