"""The distributed platform: Ray actors, Ray Tune orchestration, MLflow tracking and the CLI.

The only room that imports Ray, Ray Tune and MLflow.
"""
