"""llmd: deploy, test and tear down the llm-d inference-scheduling stack."""

__version__ = "0.1.0"
