"""sg-churn-exporter: measures security-group rule gaps behind AWS Network Load Balancers."""

__version__ = "0.1.0"
