"""The pure core of the data path, no Azure and no Falco imports, in the order data flows:

- `envelope`: an AKS diagnostic envelope (or a raw audit file) -> normalized audit events;
- `policy`: what may pass: the size bound, the dedupe window, the rate limit;
- `message`: audit events <-> the queue wire format, and the dead-letter format;
- `fields`: an audit event -> the `ka.*` field values Falco's rules read;

and `safe_text`: what any of them says outside the process (no secrets, valid JSON).
"""
