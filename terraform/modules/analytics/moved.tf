# The results bucket was resources of this module before every bucket became modules/bucket.
moved {
  from = aws_s3_bucket.results
  to   = module.results.aws_s3_bucket.this
}
moved {
  from = aws_s3_bucket_versioning.results
  to   = module.results.aws_s3_bucket_versioning.this
}
moved {
  from = aws_s3_bucket_server_side_encryption_configuration.results
  to   = module.results.aws_s3_bucket_server_side_encryption_configuration.this
}
moved {
  from = aws_s3_bucket_public_access_block.results
  to   = module.results.aws_s3_bucket_public_access_block.this
}
moved {
  from = aws_s3_bucket_ownership_controls.results
  to   = module.results.aws_s3_bucket_ownership_controls.this
}
moved {
  from = aws_s3_bucket_lifecycle_configuration.results
  to   = module.results.aws_s3_bucket_lifecycle_configuration.this
}
