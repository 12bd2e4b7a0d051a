"""AKS diagnostic envelopes and audit files -> normalized audit events (`normalize`): the
documents of a file (`documents`), events AKS cut short (`salvage`), numbers a double
would change (`numbers`)."""
