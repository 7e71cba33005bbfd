output "topic_arn" {
  description = "ARN of the alerts topic (LAKEHOUSE_ALERT_SNS_TOPIC_ARN; sns:Publish of the service and run roles)."
  value       = aws_sns_topic.alerts.arn
}

output "topic_name" {
  description = "Name of the alerts topic (<name_prefix>-alerts)."
  value       = aws_sns_topic.alerts.name
}
