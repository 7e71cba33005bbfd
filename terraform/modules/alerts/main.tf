# Where notifications go in prod (issue 13, docs/operations.md): one SNS topic the alert sensor
# publishes to (LAKEHOUSE_ALERT_SNS_TOPIC_ARN), encrypted with the deployment's key; an e-mail
# subscription is optional (SNS e-mails the address a confirmation link first). Slack and other
# webhooks need no infrastructure: their URLs are settings (secrets) of the service and run tasks.
locals {
  # One naming rule, documented in docs/operations.md.
  topic_name = "${var.name_prefix}-alerts"
}

resource "aws_sns_topic" "alerts" {
  name              = local.topic_name
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.email
}
