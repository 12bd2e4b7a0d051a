"""The k8saudit-aks Falco plugin: AKS audit logs in, `ka.*` fields out."""
