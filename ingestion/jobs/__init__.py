"""Batch jobs that run outside the Dagster process: locally as a subprocess, on AWS as EMR Serverless job runs.

Plain Python with light imports (no Dagster, no Kafka client, no boto3): the same module is the
`python -m` entry point locally and the EMR Serverless `entryPoint` in production. Progress and
results reach Dagster through Dagster Pipes when a Pipes client launched the job.
"""
