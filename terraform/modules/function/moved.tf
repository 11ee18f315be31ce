# The log group was a resource of this module before modules/log_group made every service's
# log group one way.
moved {
  from = aws_cloudwatch_log_group.this
  to   = module.log_group.aws_cloudwatch_log_group.this
}
