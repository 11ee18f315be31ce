# The schedule and its role were resources of this module before modules/schedule made both
# the compaction's and the report's.
moved {
  from = aws_iam_role.scheduler
  to   = module.schedule.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.scheduler
  to   = module.schedule.aws_iam_role_policy.this
}

moved {
  from = aws_scheduler_schedule.this
  to   = module.schedule.aws_scheduler_schedule.this["archive"]
}
