# The access log group was a resource of this module before modules/log_group made every
# service's log group one way.
moved {
  from = aws_cloudwatch_log_group.access
  to   = module.access_logs.aws_cloudwatch_log_group.this
}
