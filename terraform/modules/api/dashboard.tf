# The machine-health dashboard (src/iotpm/dashboard/index.html), served by the same
# function at <stage>/dashboard. The page itself holds no data and needs no key; every
# API call it makes sends the key the user entered, so the proxy routes stay keyed.

resource "aws_api_gateway_resource" "dashboard" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "dashboard"
}

resource "aws_api_gateway_method" "dashboard" {
  # checkov:skip=CKV2_AWS_53:GET of a static page takes no parameters
  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = aws_api_gateway_resource.dashboard.id
  http_method      = "GET"
  authorization    = "NONE" # checkov:skip=CKV_AWS_59:a static page with no data; the API calls it makes carry the key
  api_key_required = false
}

resource "aws_api_gateway_integration" "dashboard" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.dashboard.id
  http_method             = aws_api_gateway_method.dashboard.http_method
  integration_http_method = "POST"
  type                    = "AWS_PROXY"
  uri                     = module.function.invoke_arn
}
