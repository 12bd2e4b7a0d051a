"""The k8saudit-aks Falco plugin: AKS audit logs in, `ka.*` fields out."""

# The one version: the plugin reports it to Falco; pyproject.toml, the image tag, the Helm
# values and the docs repeat it, and tests/test_version.py fails when one differs.
__version__ = "0.8.0"
