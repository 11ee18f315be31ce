# The schedules and their role were resources of this module before modules/schedule made both
# the report's and the compaction's.
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
  to   = module.schedule.aws_scheduler_schedule.this
}
