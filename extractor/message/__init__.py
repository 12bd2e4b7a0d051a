"""What the ingest function and the plugin exchange: the queue wire format (`codec`) and
the one dead-letter format both write (`deadletter`)."""
