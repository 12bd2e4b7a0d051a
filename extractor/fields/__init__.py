"""The `ka.*` fields, with the Go `k8saudit` plugin's semantics: the table (`table`,
`fields.json`), how each kind of field reads an event (`builders`, `access`), all of an
event's requested fields as one generated function (`compiled`), their docs (`markdown`)."""
