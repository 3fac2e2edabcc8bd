"""`sg-churn-exporter demo`: an embedded, patched moto with a small EKS-like cluster, a scripted
controller that flips preserve_client_ip and replaces rules, and the real daemon watching it."""
